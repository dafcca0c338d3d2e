"""Resume and checkpoint safety (issue 7 §3, §4): killed runs resume bit-exactly, writes are atomic, and a
checkpoint carrying pickled code is refused without running it.

The subprocess tests run the real CLI (`python -m ulmfit pretrain`) on a small synthetic corpus written here, on
one thread, with `--set save_every=2` so that a resume checkpoint appears within the first steps.
"""
import os
import pickletools
import zipfile
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ulmfit import checkpoint as ckpt
from ulmfit.errors import UlmfitError

WORDS = ("the a movie film plot actor was is and it this very good great bad awful fine story long short "
         "scene music ending slow fast funny sad dark light").split()


class Payload:
    """Unpickling this runs `touch <marker>`: what a malicious checkpoint would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[str]:
    """20 text files (one document each) of ~1,500 words from a 30-word vocabulary: ~180 steps per epoch."""
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    paths = []
    for i in range(20):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 25))).capitalize() + "."
                 for _ in range(100)]
        (root / f"doc{i:02d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(str(root / f"doc{i:02d}.txt"))
    return paths


def _pretrain(corpus, out: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "ulmfit", "pretrain", "--train", *corpus, "--preset", "tiny", "--out", str(out),
            "--threads", "1", "--epochs", "8", "--set", "save_every=2", "--set", "tokenizer.vocab_size=80", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert proc.poll() is None, f"the run ended before writing {path}: {proc.stderr.read()[-1500:]}"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.02)


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / ckpt.WEIGHTS_FILE, weights_only=True)


@pytest.mark.slow
class TestKilledRun:
    def test_sigkill_then_resume_is_bit_identical(self, corpus, tmp_path):
        """SIGKILL at an arbitrary step, then `--resume`: the final model.pt equals an uninterrupted run's bit for
        bit. The delay is drawn from a seeded generator, so a failure can be rerun with the same delay."""
        full = _pretrain(corpus, tmp_path / "full")
        _, err = full.communicate(timeout=300)
        assert full.returncode == 0, err[-1500:]
        tok = ["--tokenizer", str(tmp_path / "full")]      # the same tokenizer for both runs
        killed = _pretrain(corpus, tmp_path / "killed", *tok)
        _wait_for(tmp_path / "killed" / ckpt.RESUME_FILE, killed)
        delay = random.Random(14).uniform(0.0, 1.5)
        time.sleep(delay)
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=60)
        assert killed.returncode == -signal.SIGKILL, f"the run finished within {delay:.2f} s; make it longer"
        step = ckpt.load_tensors(tmp_path / "killed" / ckpt.RESUME_FILE)["position"]["step"]
        resumed = _pretrain(corpus, tmp_path / "killed", *tok, "--resume")
        _, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err[-1500:]
        expect, got = _weights(tmp_path / "full"), _weights(tmp_path / "killed")
        assert expect.keys() == got.keys()
        for name in expect:
            assert torch.equal(expect[name], got[name]), f"{name} differs after a kill at step {step}"

    @pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
    def test_signal_saves_and_exits_cleanly(self, corpus, tmp_path, signum, code):
        """SIGINT/SIGTERM mid-training: exit 130/143, one line naming the signal, resume.pt saved, no traceback."""
        proc = _pretrain(corpus, tmp_path / "run")
        _wait_for(tmp_path / "run" / ckpt.RESUME_FILE, proc)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == code
        assert "Traceback" not in err
        last = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()][-1]
        assert last.startswith(f"ulmfit: stopped by {signal.Signals(signum).name} at step") and "--resume" in last
        assert ckpt.load_tensors(tmp_path / "run" / ckpt.RESUME_FILE)["position"]["step"] > 0


class TestAtomicWrites:
    def test_failed_rename_keeps_previous_file(self, tmp_path, monkeypatch):
        """A crash at the rename leaves the previous resume.pt intact and loadable, and no temp file behind."""
        path = tmp_path / ckpt.RESUME_FILE
        ckpt.save_tensors(path, {"step": torch.tensor(1)})

        def crash(src, dst):
            raise OSError(5, "Input/output error")
        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(UlmfitError, match="could not write"):
            ckpt.save_tensors(path, {"step": torch.tensor(2)})
        assert ckpt.load_tensors(path)["step"].item() == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.RESUME_FILE]

    def test_interrupt_mid_write_keeps_previous_file(self, tmp_path, monkeypatch):
        """A KeyboardInterrupt between the write and the fsync propagates, and the previous file is untouched."""
        path = tmp_path / ckpt.WEIGHTS_FILE
        ckpt.save_tensors(path, {"w": torch.ones(3)})
        before = path.read_bytes()

        def interrupt(fd):
            raise KeyboardInterrupt
        monkeypatch.setattr(os, "fsync", interrupt)
        with pytest.raises(KeyboardInterrupt):
            ckpt.save_tensors(path, {"w": torch.zeros(3)})
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.WEIGHTS_FILE]

    def test_full_disk_is_a_user_error(self, tmp_path, monkeypatch):
        """ENOSPC during a checkpoint write becomes a one-line UlmfitError and the old file stays."""
        path = tmp_path / ckpt.WEIGHTS_FILE
        ckpt.save_tensors(path, {"w": torch.ones(3)})

        def full(fd):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(UlmfitError, match="No space left on device") as info:
            ckpt.save_tensors(path, {"w": torch.zeros(3)})
        assert "\n" not in str(info.value)
        assert torch.equal(ckpt.load_tensors(path)["w"], torch.ones(3))


class TestPickledCode:
    def test_payload_is_refused_and_never_runs(self, tmp_path):
        """A checkpoint whose unpickling would run os.system is refused with one line; the command never runs."""
        marker, path = tmp_path / "pwned", tmp_path / ckpt.WEIGHTS_FILE
        torch.save({"weight": torch.ones(2), "extra": Payload(marker)}, path)
        with pytest.raises(UlmfitError, match="refused") as info:
            ckpt.load_tensors(path)
        assert "\n" not in str(info.value)
        assert not marker.exists()

    def test_payload_is_live(self, tmp_path):
        """Control, read without unpickling: the file's pickle really calls os.system on the touch command."""
        marker, path = tmp_path / "pwned", tmp_path / ckpt.WEIGHTS_FILE
        torch.save({"extra": Payload(marker)}, path)
        with zipfile.ZipFile(path) as z:
            data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        strings = [arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
        assert f"{os.system.__module__} system" in strings and f"touch {marker}" in strings  # GLOBAL + its arg
        assert not marker.exists()

    def test_truncated_checkpoint_is_a_user_error(self, tmp_path):
        """A checkpoint cut in half reads as 'truncated or corrupt', not a torch traceback."""
        path = tmp_path / ckpt.WEIGHTS_FILE
        ckpt.save_tensors(path, {"w": torch.ones(100)})
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(UlmfitError, match="truncated or corrupt"):
            ckpt.load_tensors(path)


class TestSupervisorLoop:
    """`until ulmfit ... --resume; do :; done` restarts a killed run until it finishes (issue 14 §5)."""

    def test_resume_without_checkpoint_starts_afresh_then_finished_is_success(self, corpus, tmp_path, capsys):
        """--resume on an empty out dir trains from the start with a warning; on the finished run it exits 0."""
        from ulmfit.cli import main
        args = ["pretrain", "--train", *corpus[:4], "--preset", "tiny", "--out", str(tmp_path / "run"),
                "--threads", "1", "--max-steps", "3", "--set", "tokenizer.vocab_size=80", "--resume"]
        with pytest.warns(UserWarning, match="no checkpoint yet; starting the run from the beginning"):
            assert main(args) == 0
        assert (tmp_path / "run" / ckpt.WEIGHTS_FILE).is_file()
        capsys.readouterr()
        assert main(args) == 0
        out, err = capsys.readouterr()
        assert "finished run" in err and '"finished": true' in out.strip().splitlines()[-1]

    @pytest.mark.slow
    def test_sigkilled_run_finishes_under_the_loop_with_time_checkpoints_only(self, corpus, tmp_path):
        """Step checkpoints off, a checkpoint every ~0.1 s of wall time: SIGKILL mid-run, the loop's next --resume
        continues from a step > 0 and finishes; one more --resume is a success that does nothing."""
        timed = ("--resume", "--set", "save_every=0", "--set", "save_minutes=0.002")
        first = _pretrain(corpus, tmp_path / "run", *timed)
        _wait_for(tmp_path / "run" / ckpt.RESUME_FILE, first)
        time.sleep(0.5)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
        assert first.returncode == -signal.SIGKILL
        step = ckpt.load_tensors(tmp_path / "run" / ckpt.RESUME_FILE)["position"]["step"]
        assert step > 0
        proc = _pretrain(corpus, tmp_path / "run", *timed)      # the loop's next turn
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-1500:]
        assert f"resuming {tmp_path / 'run'} from step {step}" in out
        again = _pretrain(corpus, tmp_path / "run", *timed)
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0 and "finished run" in err

    def test_a_fresh_run_killed_before_its_first_checkpoint_is_not_finished(self, tmp_path):
        """--force starts afresh by removing the earlier run's weights and config, so a kill before the first
        checkpoint leaves nothing that `--resume` would mistake for the finished run."""
        out = tmp_path / "run"
        ckpt.save_tensors(out / ckpt.WEIGHTS_FILE, {"w": torch.ones(1)})
        ckpt.write_json(out / ckpt.CONFIG_FILE, {"stage": "pretrain"})
        ckpt.prepare_out_dir(out, resume=False, force=True)
        assert not (out / ckpt.WEIGHTS_FILE).exists() and not (out / ckpt.CONFIG_FILE).exists()
        with pytest.warns(UserWarning, match="no checkpoint yet"):
            ckpt.prepare_out_dir(out, resume=True, force=False)
