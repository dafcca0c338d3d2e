"""Tests for ulmfit/checkpoint.py's atomic writes: run-dir files get the user's usual permissions.

`tempfile.mkstemp` creates 0600 files whatever the umask, and the rename keeps that mode, so a teammate could not
read config.json or model.pt. The final file must have the mode an ordinary `open(path, "w")` would give it.
"""
import errno
import os

import pytest

from ulmfit import checkpoint as ckpt
from ulmfit.errors import UlmfitError


@pytest.fixture
def umask():
    """Set a umask for the test; the process's own one comes back afterwards, whatever happens."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


class TestAtomicWriteBytes:
    @pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
                             ids=["umask-022", "umask-077", "umask-002"])
    def test_mode_follows_the_umask(self, tmp_path, umask, mask, mode):
        """The written file's mode is 0o666 & ~umask, as for a file created with open()."""
        umask(mask)
        ckpt.atomic_write_bytes(tmp_path / "config.json", b"{}")
        assert (tmp_path / "config.json").stat().st_mode & 0o777 == mode

    def test_replaces_the_old_file_and_leaves_no_temp(self, tmp_path):
        """The new bytes replace the old ones, and only the target file remains in the dir."""
        (tmp_path / "model.pt").write_bytes(b"old")
        ckpt.atomic_write_bytes(tmp_path / "model.pt", b"new")
        assert (tmp_path / "model.pt").read_bytes() == b"new" and os.listdir(tmp_path) == ["model.pt"]

    def test_failed_write_keeps_the_old_file_and_removes_the_temp(self, tmp_path, monkeypatch):
        """A full disk at fsync is a one-line UlmfitError; the old file is intact and no temp file is left."""
        (tmp_path / "model.pt").write_bytes(b"old")

        def no_space(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, "fsync", no_space)
        with pytest.raises(UlmfitError, match="could not write"):
            ckpt.atomic_write_bytes(tmp_path / "model.pt", b"new")
        assert (tmp_path / "model.pt").read_bytes() == b"old" and os.listdir(tmp_path) == ["model.pt"]
