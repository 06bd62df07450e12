"""Features made from audio by an ONNX encoder: decoding, resampling, chunks, rows per frame and the cache."""

from __future__ import annotations

import tracemalloc
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.config.features import FeaturesSpec
from composer.config.job import load_job
from composer.errors import JobError, ModelError
from composer.inputs import encoder as encoder_module
from composer.inputs.audio import decode_mono
from composer.inputs.audio_features import CACHE_PREFIX, write_features
from composer.model.zoo import build_audio_encoder
from tests.conftest import write_job

DIM = 6


def _speech(seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Voice-like int16 samples [n, channels]: a gliding tone with noise, different in each channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * 150 * t * (1 + 0.1 * np.sin(t)))
    rows = [0.3 * tone + 0.05 * rng.standard_normal(len(t)) * (c + 1) for c in range(channels)]
    return np.clip(np.stack(rows, axis=1) * 32767, -32768, 32767).astype(np.int16)


def _wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as file:
        file.setnchannels(samples.shape[1])
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(samples.tobytes())
    return path


def _compressed(path: Path, samples: np.ndarray, rate: int, codec: str) -> Path:
    """``samples`` (int16 [n, 2]) encoded with ``codec`` (mp3, aac) into ``path``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.reshape(1, -1)), format="s16", layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_audio_encoder(tmp_path_factory.mktemp("encoder") / "encoder.onnx", dim=DIM, channels=4, seed=2)


def _spec(audio: Path, encoder: Path, **settings: float) -> FeaturesSpec:
    return FeaturesSpec(audio=audio, encoder=encoder, **settings)  # type: ignore[arg-type]


def _direct(encoder: Path, samples: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(encoder), providers=["CPUExecutionProvider"])
    return session.run(None, {"audio": samples[None, :].astype(np.float32)})[0][0]


def test_a_16k_mono_wav_gives_the_encoder_run_directly_on_its_samples(tmp_path, encoder):
    samples = _speech(3.0)
    wav = _wav(tmp_path / "speech.wav", samples)
    shape = write_features(_spec(wav, encoder), Fraction(25), tmp_path / "f.npy")
    rows = _direct(encoder, samples[:, 0] / 32768.0)
    assert shape == (len(rows) // 2, 2, DIM) == (75, 2, DIM)
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), rows[:150].reshape(75, 2, DIM), rtol=0, atol=1e-5)


def test_audio_already_mono_at_the_rate_goes_in_bit_for_bit(tmp_path):
    samples = _speech(1.3)
    decoded = np.concatenate(list(decode_mono(_wav(tmp_path / "s.wav", samples), 16000)))
    assert np.array_equal(decoded, samples[:, 0].astype(np.float32) / 32768)


def test_other_rates_and_channels_are_resampled_and_averaged(tmp_path):
    stereo = _speech(2.0, rate=44100, channels=2)
    decoded = np.concatenate(list(decode_mono(_wav(tmp_path / "s.wav", stereo, 44100), 16000)))
    assert abs(len(decoded) - 32000) <= 2
    # The mean of the channels, resampled: compare with each channel alone resampled, at the tone's energy.
    left = np.concatenate(list(decode_mono(_wav(tmp_path / "l.wav", stereo[:, :1], 44100), 16000)))
    right = np.concatenate(list(decode_mono(_wav(tmp_path / "r.wav", stereo[:, 1:], 44100), 16000)))
    n = min(len(decoded), len(left), len(right))
    np.testing.assert_allclose(decoded[:n], (left[:n] + right[:n]) / 2, atol=1e-4)
    assert np.abs(decoded).max() <= 1.0


@pytest.mark.parametrize(("codec", "suffix"), [("libmp3lame", "mp3"), ("aac", "m4a")])
def test_a_44k_stereo_compressed_file_goes_through(tmp_path, encoder, codec, suffix):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    path = _compressed(tmp_path / f"speech.{suffix}", _speech(2.0, rate=44100, channels=2), 44100, codec)
    frames, g, dim = write_features(_spec(path, encoder), Fraction(25), tmp_path / "f.npy")
    assert (g, dim) == (2, DIM) and 49 <= frames <= 53  # 2 s, give or take the codec's padding
    assert np.isfinite(np.load(tmp_path / "f.npy")).all()


def test_rows_per_second_over_fps_not_whole_exits_2_naming_both(tmp_path, encoder):
    wav = _wav(tmp_path / "speech.wav", _speech(1.0))
    result = CliRunner().invoke(main, ["features", str(wav), "--encoder", str(encoder), "-o",
                                       str(tmp_path / "f.npy"), "--fps", "30"])
    assert result.exit_code == 2, result.output
    assert "50 encoder rows a second at 30 fps" in result.output and "whole number" in result.output
    assert not (tmp_path / "f.npy").exists()


def test_features_command_writes_the_rows(tmp_path, encoder):
    wav = _wav(tmp_path / "speech.wav", _speech(1.0))
    result = CliRunner().invoke(main, ["features", str(wav), "--encoder", str(encoder), "-o",
                                       str(tmp_path / "out" / "f.npy"), "--fps", "50", "--rows-per-second", "50"])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "out" / "f.npy").shape == (50, 1, DIM)


def test_long_audio_goes_in_chunks_with_the_same_rows_and_bounded_memory(tmp_path, encoder, monkeypatch):
    seconds = 40.0
    samples = _speech(seconds)
    wav = _wav(tmp_path / "long.wav", samples)
    calls: list[int] = []
    run = encoder_module.AudioEncoder.__call__

    def counted(self, chunk):
        calls.append(len(chunk))
        return run(self, chunk)

    monkeypatch.setattr(encoder_module.AudioEncoder, "__call__", counted)
    tracemalloc.start()
    try:
        write_features(_spec(wav, encoder, chunk_seconds=2.0, overlap_seconds=0.2), Fraction(25), tmp_path / "f.npy")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(calls) == 20 and max(calls) <= (2.0 + 2 * 0.2) * 16000
    whole_audio = seconds * 16000 * 4  # the samples as float32
    assert peak < whole_audio / 4, f"peak {peak} bytes for {whole_audio} bytes of audio"
    # The demo-like encoder sees 400 samples a row, less than the overlap: the chunks' rows are the whole call's.
    rows = _direct(encoder, samples[:, 0] / 32768.0)
    np.testing.assert_allclose(np.load(tmp_path / "f.npy").reshape(-1, DIM), rows[: len(rows) // 2 * 2], atol=1e-5)


def test_an_encoder_that_does_not_take_pcm_is_refused(tmp_path):
    from composer.model.zoo import build_light

    wav = _wav(tmp_path / "speech.wav", _speech(1.0))
    model = build_light(tmp_path / "m.onnx", window=8, feature_shape=None)
    with pytest.raises(ModelError, match="mono PCM"):
        write_features(_spec(wav, model), Fraction(25), tmp_path / "f.npy")


def test_audio_too_short_for_one_frame_is_an_input_error(tmp_path, encoder):
    wav = _wav(tmp_path / "speech.wav", _speech(0.03))
    with pytest.raises(JobError, match="fewer than the 2 rows of one frame"):
        write_features(_spec(wav, encoder), Fraction(25), tmp_path / "f.npy")
    assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob(".*"))


# --- in a job ----------------------------------------------------------------------------------------------------


@pytest.fixture
def audio_job(make_job, encoder):
    """The factory's job with its features made from a 1 s wav (25 frames) by the encoder."""
    job_file = make_job(outputs=None)
    root = job_file.parent
    _wav(root / "speech.wav", _speech(1.0))
    text = job_file.read_text().replace("[model]", f'[features]\naudio = "speech.wav"\nencoder = "{encoder}"\n'
                                                   "window = 2\n\n[model]")
    job_file.write_text(text)
    from composer.model.zoo import build_elementwise
    from tests.conftest import BORDER, CROP

    build_elementwise(root / "model.onnx", window=CROP - 2 * BORDER, in_channels=6, feature_shape=(2 * 2 * DIM,),
                      seed=3)
    return job_file


def test_a_job_renders_from_audio_and_a_second_render_does_not_encode(audio_job, monkeypatch):
    from composer.rendering.render import render

    calls: list[int] = []
    run = encoder_module.AudioEncoder.__call__
    monkeypatch.setattr(encoder_module.AudioEncoder, "__call__", lambda self, s: calls.append(len(s)) or run(self, s))
    job = load_job(audio_job, {"output": {"video": str(audio_job.parent / "out.mp4")}})
    assert job.output.audio == audio_job.parent / "speech.wav"  # the features' audio is muxed
    assert render(job).frames == 25 and len(calls) == 1
    cached = list(audio_job.parent.glob(".out.mp4.features-*.npy"))
    assert len(cached) == 1
    assert render(job).frames == 25 and len(calls) == 1  # from the cache
    with av.open(str(audio_job.parent / "out.mp4")) as container:
        assert len(container.streams.audio) == 1


def test_a_render_reads_the_audio_and_the_encoder_for_their_digests_once(audio_job, encoder, monkeypatch):
    """The features cache's key, the soundtrack and the encoder in the resume fingerprint share one digest each."""
    from composer.inputs import digest
    from composer.rendering.render import render

    digested: list[Path] = []
    plain = digest._digest
    monkeypatch.setattr(digest, "_digest", lambda path, model: digested.append(path) or plain(path, model))
    job = load_job(audio_job, {"output": {"video": str(audio_job.parent / "out.mp4")}})
    render(job)
    assert digested.count(audio_job.parent / "speech.wav") == 1 and digested.count(Path(encoder)) == 1
    digested.clear()
    render(job, overwrite=True)  # another render: read again, in case the files changed in between
    assert digested.count(audio_job.parent / "speech.wav") == 1


def test_a_file_changed_between_two_digests_is_read_again(tmp_path):
    from composer.inputs.digest import content_digest, remembered_digests

    path = tmp_path / "speech.wav"
    path.write_bytes(b"a" * 100)
    with remembered_digests():
        first = content_digest(path)
        path.write_bytes(b"b" * 101)
        assert content_digest(path) != first
    assert content_digest(path) != first


def test_changed_audio_is_encoded_again_and_the_old_cache_removed(audio_job, tmp_path):
    from composer.rendering.render import render

    job = load_job(audio_job)
    render(job)
    first = list((audio_job.parent / "out").glob(f"{CACHE_PREFIX}*.npy"))
    _wav(audio_job.parent / "speech.wav", _speech(1.0, seed=5))
    render(job, overwrite=True)
    second = list((audio_job.parent / "out").glob(f"{CACHE_PREFIX}*.npy"))
    assert len(first) == len(second) == 1 and first != second
    other = load_job(audio_job, {"output": {"frames": "", "video": str(audio_job.parent / "out" / "v.mp4")}})
    render(other)  # another output in the same folder keeps its own features, and leaves the others alone
    assert len(list((audio_job.parent / "out").glob(".v.mp4.features-*.npy"))) == 1 and second[0].exists()


def test_output_audio_says_otherwise(audio_job, tmp_path):
    other = _wav(tmp_path / "other.wav", _speech(1.0, seed=9))
    assert load_job(audio_job, {"output": {"audio": str(other)}}).output.audio == other
    assert load_job(audio_job, {"output": {"audio": ""}}).output.audio is None  # switched off


@pytest.mark.parametrize(("features", "message"), [
    ({"path": "f.npy", "audio": "a.wav", "encoder": "e.onnx"}, "not both"),
    ({"audio": "a.wav"}, "features.encoder: missing"),
    ({"path": "f.npy", "encoder": "e.onnx"}, "features.encoder: applies to features.audio"),
    ({"audio": "a.wav", "encoder": "e.onnx", "sample_rate": 16000, "rows_per_second": 30}, "do not divide"),
    ({"audio": "a.wav", "encoder": "e.onnx", "chunk_seconds": 0}, "features.chunk_seconds"),
    ({"audio": "a.wav", "encoder": "e.onnx", "overlap_seconds": -1}, "features.overlap_seconds"),
])
def test_bad_audio_feature_keys_name_the_key(tmp_path, features, message):
    job = write_job(tmp_path / "job.toml", {"template": {"video": "t.mp4", "rects": "r.json"}, "features": features,
                                            "model": {"path": "m.onnx", "crop": 8}, "output": {"video": "o.mp4"}})
    with pytest.raises(JobError, match=message):
        load_job(job)


def test_the_resume_fingerprint_holds_the_encoder_and_audio_content(audio_job, encoder, tmp_path):
    from composer.output.resume import fingerprint

    job = load_job(audio_job)
    before = fingerprint(job, 25)
    copy = tmp_path / "encoder2.onnx"
    build_audio_encoder(copy, dim=DIM, channels=4, seed=3)
    changed = fingerprint(load_job(audio_job, {"features": {"encoder": str(copy)}}), 25)
    assert before["features.encoder"] != changed["features.encoder"]
    assert before["features.audio"] == changed["features.audio"] != "missing"


def test_a_resume_needs_the_same_rows(audio_job):
    """The fingerprint holds the content of the encoded rows, not only of what they were made from."""
    from composer.inputs.plan import open_plan
    from composer.output.resume import fingerprint

    job = load_job(audio_job)
    with open_plan(job) as plan:
        rows = Path(plan.features.filename)  # type: ignore[union-attr]
        first = fingerprint(job, plan.count, rows=rows)
    assert rows.parent == audio_job.parent / "out" and rows.name.startswith(CACHE_PREFIX)  # the frames folder
    np.save(rows, np.load(rows) + 1e-3)  # the same inputs, other rows (another ONNX Runtime's rounding, say)
    assert fingerprint(job, 25, rows=rows)["features.rows"] != first["features.rows"]
