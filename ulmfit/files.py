"""Base layer: crash-safe files: atomic writes, weights-only tensor loads and JSON, each failure one readable line.

Every write goes to a temp file in the same dir, is fsync'ed and then renamed over the target, so a crash
mid-write never leaves a corrupt file under the real name. Tensors are read back with
torch.load(weights_only=True), so a file carrying pickled code is refused, never run.

These helpers know nothing of models or tokenizers, and import nothing of ulmfit's but its error type, so that the
tokenizer, the training loop and the run dirs (checkpoint.py) can all write through them without importing one
another. The names of a run dir's files are here for the same reason: the loop writes resume.pt and metrics.jsonl
without importing checkpoint.py.

Base layer (STYLE.md §5.2): imports torch and `errors` only.
"""
from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import torch

from .errors import UlmfitError

# The files of a run dir (checkpoint.py says what each holds).
CONFIG_FILE, WEIGHTS_FILE, RESUME_FILE, METRICS_FILE = "config.json", "model.pt", "resume.pt", "metrics.jsonl"
TOKENIZER_FILE = "tokenizer.model"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one.

    The file gets the mode open() would give it (0o666 & ~umask): tempfile.mkstemp would make it 0600 whatever
    the umask, and the rename keeps the mode, so a teammate could not read the run dir.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:                  # e.g. a regular file where a folder of the path should be
        raise UlmfitError(f"could not write {path}: {e.strerror or e}") from None
    for _ in range(100):                  # a unique name in the same dir (the rename must not cross filesystems)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise UlmfitError(f"could not write {path}: {e.strerror or e}") from None
    else:
        raise UlmfitError(f"could not write {path}: no free temporary name in {path.parent}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:            # also a KeyboardInterrupt mid-write: never leave the temp file behind
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise UlmfitError(f"could not write {path}: {e.strerror or e}") from None
        raise
    try:                                  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        os.fsync(dir_fd)
        os.close(dir_fd)
    except OSError:
        pass


def save_tensors(path: Path, obj) -> None:
    """torch.save `obj` (tensors, numbers, strings, lists, dicts only) atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_tensors(path: Path, map_location="cpu"):
    """torch.load with weights_only=True: a file that carries pickled code is refused, never executed."""
    path = Path(path)
    if not path.is_file():
        raise UlmfitError(f"{path} is missing")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported content"
        raise UlmfitError(f"{path} is refused: it holds pickled objects that are not plain tensors "
                          f"({first[:160]}); only state_dict checkpoints are loaded") from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        if path.stat().st_size == 0:
            raise UlmfitError(f"{path} is empty (a write that never finished?); delete it, or --force") from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]    # EOFError's message can be empty
        raise UlmfitError(f"{path} is not a readable checkpoint (truncated or corrupt: {first[:160]})") from None


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UlmfitError(f"{path} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UlmfitError(f"{path} is not valid JSON ({e})") from None


def build_checked(build, state: dict, source: Path) -> torch.nn.Module:
    """`build()`'s module with `state` loaded, the sizes checked first on the meta device, where building costs no
    memory: a tampered config.json asking for a 50,000-wide LSTM fails here in one line instead of allocating tens
    of GB for weights that cannot fit (found by the 2,000-example property pass, which grew to 22 GB)."""
    try:
        with torch.device("meta"):
            probe = build()
    except (RuntimeError, ValueError, TypeError, OverflowError) as e:     # sizes past what torch can index
        raise UlmfitError(f"the model in {source}'s config cannot be built ({str(e).splitlines()[0][:120]}); "
                          "its sizes are not the ones its weights were trained with") from None
    want = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    wrong = sorted(k for k in want.keys() & have.keys() if want[k] != have[k])
    if wrong:
        k = wrong[0]
        raise UlmfitError(f"the weights in {source} do not fit the model in its config ({k}: the weights are "
                          f"{list(have[k])}, the config makes {list(want[k])})")
    module = build()
    load_state_checked(module, state, source)       # and the keys, in torch's words
    return module


def load_state_checked(module: torch.nn.Module, state: dict, source: Path) -> None:
    """load_state_dict, turning key or shape mismatches into one readable line."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise UlmfitError(f"the weights in {source} do not fit the model in its config ({detail[:200]})") from None
