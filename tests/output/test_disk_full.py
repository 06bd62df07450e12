"""A full disk is a clear error naming the file, never a truncated image under a final name."""

from __future__ import annotations

import builtins
import errno

from click.testing import CliRunner

from composer.cli.main import main
from composer.output import writers

FULL_AT = 9  # the tenth image written hits a full disk


class _FullDisk:
    """A file object that takes a few bytes, then fails the way a full disk does."""

    def __init__(self, path, mode):
        self._file = builtins.open(path, mode)

    def write(self, data):
        self._file.write(bytes(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


def test_enospc_is_a_clear_error(monkeypatch, make_job):
    calls = {"n": 0}

    def fake_open(path, mode="r", *args, **kwargs):
        if "w" in mode and str(path).endswith(".png.tmp"):
            calls["n"] += 1
            if calls["n"] > FULL_AT:
                return _FullDisk(path, mode)
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(writers, "open", fake_open, raising=False)
    job_file = make_job(run={"workers": 1, "batch": 2})
    result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert "No space left on device" in message and "write failed at frame" in message
    assert ".png" in message and "\n" not in message
    out = job_file.parent / "out"
    left = sorted(p.name for p in out.iterdir() if p.name != ".composer-run.json")
    assert not [name for name in left if name.endswith(".tmp")], left
    for name in left:  # every image under a final name is complete
        assert (out / name).read_bytes()[-8:-4] == b"IEND", name
    assert len(left) == FULL_AT
