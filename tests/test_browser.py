"""A real client: headless Chromium plays a rendered mp4 with audio from a local HTTP server.

The page reports back by POSTing JSON to the server that served it, so the test needs nothing beyond the
standard library and a ``chromium`` binary; it is skipped where there is none (CI installs one).
"""

from __future__ import annotations

import functools
import http.server
import json
import queue
import shutil
import subprocess
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.model.zoo import build_elementwise
from tests.conftest import BORDER, CROP, boxes_for, write_job

W, H, FRAMES, FPS = 160, 120, 25, 25
# BGR colours and the top-left corners of 30 x 30 patches, away from the repainted rectangles (top-left).
PATCHES = {(0, 0, 255): (60, 20), (0, 255, 0): (100, 20), (255, 0, 0): (60, 70), (255, 255, 255): (100, 70)}
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

PAGE = """<!doctype html>
<html><body>
<video id="video" src="result.mp4" muted autoplay playsinline></video>
<canvas id="canvas" width="{width}" height="{height}"></canvas>
<script>
const video = document.getElementById("video");
const patches = {patches};
let sent = false;
function report(event) {{
  if (sent) return;
  sent = true;
  const context = document.getElementById("canvas").getContext("2d", {{willReadFrequently: true}});
  let pixels = null;
  if (video.videoWidth) {{
    context.drawImage(video, 0, 0);
    pixels = patches.map(([x, y]) => Array.from(context.getImageData(x + 15, y + 15, 1, 1).data.slice(0, 3)));
  }}
  fetch("/result", {{method: "POST", body: JSON.stringify({{
    event, duration: video.duration, currentTime: video.currentTime, ended: video.ended,
    error: video.error && {{code: video.error.code, message: video.error.message}},
    width: video.videoWidth, height: video.videoHeight, pixels,
    h264: video.canPlayType('video/mp4; codecs="avc1.640028, mp4a.40.2"'),
    audioBytes: video.webkitAudioDecodedByteCount,
  }})}});
}}
video.addEventListener("ended", () => report("ended"));
video.addEventListener("error", () => report("error"));
setTimeout(() => report("timeout"), 8000);
</script>
</body></html>
"""


def _browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    pytest.skip(f"no Chromium on PATH (looked for {', '.join(BROWSERS)}); .ci/run installs it")


def _render(root: Path) -> Path:
    """Renders a 1 s, 160 x 120, 25 fps job with a 2 s wav (cut to 1 s) through `composer run`."""
    frames = root / "template"
    frames.mkdir(parents=True)
    for index in range(FRAMES):
        frame = np.full((H, W, 3), 90, np.uint8)
        cv2.circle(frame, (20 + 4 * index, 90), 12, (40, 160, 220), -1)
        for colour, (x, y) in PATCHES.items():
            frame[y : y + 30, x : x + 30] = colour
        cv2.imwrite(str(frames / f"{index}.png"), frame)
    (root / "rects.json").write_text(json.dumps(boxes_for(FRAMES, size=(W, H))))
    tone = (np.sin(np.arange(88200) * 2 * np.pi * 440 / 44100) * 8000).astype(np.int16)
    with wave.open(str(root / "speech.wav"), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(44100)
        file.writeframes(tone.tobytes())
    build_elementwise(root / "model.onnx", window=CROP - 2 * BORDER, in_channels=3, seed=3)
    job = write_job(
        root / "job.toml",
        {
            "template": {"frames": "template", "rects": "rects.json"},
            "model": {"path": "model.onnx", "crop": CROP, "border": BORDER, "inputs": ["crop"]},
            "output": {"video": "site/result.mp4", "fps": FPS, "audio": "speech.wav"},
        },
    )
    result = CliRunner().invoke(main, ["run", str(job), "-q"])
    assert result.exit_code == 0, result.output
    return root / "site" / "result.mp4"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site folder; a POST to /result hands the page's report to the test."""

    results: queue.Queue[dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.results.put(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # Keeps the test output clean.


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """An HTTP server for tmp_path/site on 127.0.0.1 and a free port, and the queue of page reports."""
    results: queue.Queue[dict[str, Any]] = queue.Queue()
    handler = type("Handler", (_Handler,), {"results": results})
    site = tmp_path / "site"
    site.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", results
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_chromium_plays_the_video(tmp_path: Path, server: tuple[str, queue.Queue[dict[str, Any]]]) -> None:
    browser = _browser()
    url, results = server
    _render(tmp_path)
    patches = json.dumps(list(PATCHES.values()))
    (tmp_path / "site" / "index.html").write_text(PAGE.format(width=W, height=H, patches=patches))
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--mute-audio",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--autoplay-policy=no-user-gesture-required",
        f"{url}/index.html",
    ]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        report = results.get(timeout=20)
    except queue.Empty:
        pytest.fail(f"{browser} sent no report within 20 s")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert report["h264"] == "probably", f"this Chromium cannot play H.264/AAC: {report}"
    assert report["event"] == "ended" and report["ended"] and report["error"] is None, report
    assert (report["width"], report["height"]) == (W, H)
    assert abs(report["duration"] - FRAMES / FPS) <= 1 / FPS, report
    assert report["audioBytes"] > 0, report
    # Saturated primaries are immune to transfer curves: the matrix and range decide them. Read as BT.601,
    # red would lose 22 levels of R and green gain 20; Chromium's software path (libyuv) rounds BT.709's
    # 2.112 Cb-to-B factor down to 2.0, which costs blue up to 13 levels, hence the tolerance.
    for (blue, green, red), rgb in zip(PATCHES, report["pixels"], strict=True):
        assert np.abs(np.subtract(rgb, (red, green, blue))).max() <= 14, (report["pixels"], list(PATCHES))
