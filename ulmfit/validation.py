"""The checks made where input enters (issue 30), one rule per kind of input, used by the CLI, the readers, the
run-dir loader and `serve` alike. docs/input-rules.md states the rules for users; this module is their one
implementation.

- Texts (argv, files, JSON bodies): a text must be valid Unicode. A lone surrogate (U+D800-U+DFFF) is refused
  with a message naming the argument, row or field: Python hands invalid UTF-8 in argv over as such surrogates
  ("surrogateescape"), and JSON can spell one as "\\ud800"; SentencePiece takes neither, and no UTF-8 file can
  be written with one. We refuse rather than replace: a replaced text would be classified as something the user
  never wrote, silently.
- Output paths: never an input file, never a file inside a run dir, never under an existing regular file.
- Run dirs: config.json's fields have the types of the config's defaults; weights are finite.
- Request bodies of `serve`: JSON of bounded depth and integer length (the body size is bounded by the server).

Each check raises `UlmfitError` (one line in the CLI, a 4xx JSON error in serve) and imports no torch.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import fields
from pathlib import Path

from .errors import UlmfitError

_SURROGATE = re.compile("[\ud800-\udfff]")


def invalid_text(text: str) -> str | None:
    """Why `text` is not valid Unicode, in a few words, or None when it is."""
    m = _SURROGATE.search(text)
    if m is None:
        return None
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:          # how Python spells an undecodable byte of argv (surrogateescape)
        return f"it is not valid UTF-8 (byte 0x{code - 0xDC00:02x} at character {m.start() + 1})"
    return f"it holds a lone surrogate U+{code:04X} at character {m.start() + 1}, which is not valid Unicode"


def check_text(text: str, where: str) -> str:
    """`text`, or a UlmfitError naming `where` (an argument, a row, a JSON field) when it is not valid Unicode."""
    problem = invalid_text(text)
    if problem:
        raise UlmfitError(f"{where}: {problem}; re-encode it as UTF-8")
    return text


def check_strings(obj, where: str) -> None:
    """Every string (and key) inside a JSON value is valid Unicode, or a UlmfitError naming the first bad one."""
    if isinstance(obj, str):
        check_text(obj, where)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            check_text(str(key), f"{where}: a key")
            check_strings(value, f"{where}, field {key!r}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            check_strings(value, f"{where}[{i}]")


def check_args(args) -> None:
    """The text arguments of a parsed command line (paths excepted: a file name need not be UTF-8)."""
    for name, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str):
                check_text(v, f"argument {name.replace('_', '-')} {_shown(v)}")


def _shown(text: str) -> str:
    return ascii(text[:40])


# ---- numbers --------------------------------------------------------------------------------------------
SEED_MAX = 2**63 - 1                     # torch.manual_seed takes at most 64 bits; numpy's rng takes no negatives


def check_seed(seed, name: str) -> None:
    if not 0 <= seed <= SEED_MAX:
        raise UlmfitError(f"{name} must be in [0, 2**63 - 1], got {seed}")


def check_finite(value: float, name: str) -> None:
    if not math.isfinite(value):
        raise UlmfitError(f"{name} must be a finite number, got {value}")


MAX_WAIT_MS = 10_000                     # a micro-batch never waits more than 10 s for company


def check_serve_config(config) -> None:
    """`serve`'s settings (a ServeConfig), each named by its CLI flag."""
    if not 0 <= config.port <= 65535:
        raise UlmfitError(f"--port must be in 0..65535 (0: any free port), got {config.port}")
    if config.threads < 0:
        raise UlmfitError(f"--threads must be >= 0 (0: torch's default), got {config.threads}")
    if not (math.isfinite(config.max_wait_ms) and 0 <= config.max_wait_ms <= MAX_WAIT_MS):
        raise UlmfitError(f"--max-wait-ms must be in [0, {MAX_WAIT_MS}], got {config.max_wait_ms}")
    for name in ("max_batch", "max_texts", "max_chars", "max_body_bytes", "max_explain", "explain_steps"):
        if getattr(config, name) < 1:
            raise UlmfitError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}")


# ---- output paths ----------------------------------------------------------------------------------------
def _is_run_dir(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.pt").is_file()


def check_output_file(out: Path, flag: str = "--out", inputs=()) -> None:
    """Before anything is computed: `out` is a file we may write — not one of `inputs`, not inside a run dir
    (its model.pt, config.json...), not under an existing regular file, not a folder."""
    out = Path(out)
    resolved = out.resolve()
    for source in inputs:
        if source is not None and Path(source).exists() and resolved == Path(source).resolve():
            raise UlmfitError(f"{flag} {out} is the input file; choose another name (inputs are never overwritten)")
    if out.is_dir():
        raise UlmfitError(f"{flag} {out} is a folder; name a file")
    _check_parents(out, flag)
    if _is_run_dir(resolved.parent):
        raise UlmfitError(f"{flag} {out} is inside the run dir {out.parent}; write it elsewhere (a run dir's files "
                          "are never overwritten)")


def check_output_dir(out: Path, flag: str = "--out", inputs=()) -> None:
    """`out` is a folder we may create or fill: not an input, not a run dir (whose files it would replace), not
    under an existing regular file."""
    out = Path(out)
    resolved = out.resolve()
    for source in inputs:
        if source is not None and resolved == Path(source).resolve():
            raise UlmfitError(f"{flag} {out} is the input run dir; choose a new folder (inputs are never overwritten)")
    _check_parents(out, flag)
    if out.exists() and not out.is_dir():
        raise UlmfitError(f"{flag} {out} exists and is not a folder")
    if out.is_dir() and _is_run_dir(out):
        raise UlmfitError(f"{flag} {out} holds a run; choose a new folder (a run dir's files are never overwritten)")


def _check_parents(out: Path, flag: str) -> None:
    for parent in Path(out).parents:
        if parent.exists() and not parent.is_dir():
            raise UlmfitError(f"{flag} {out}: {parent} is a file, not a folder")


# ---- run dirs ---------------------------------------------------------------------------------------------
def _kind_ok(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    return True


def check_run_meta(meta, path: Path, sections: dict) -> None:
    """config.json of a run dir: an object with "stage" (a string) and "config" (an object of the sections, each
    field of the type of its default); "labels", where present, a list of strings. Names the file and field."""
    if not isinstance(meta, dict):
        raise UlmfitError(f"{path} holds a JSON {type(meta).__name__}, not a ulmfit run config (an object)")
    if "config" not in meta or "stage" not in meta:
        raise UlmfitError(f"{path} is not a ulmfit run config (no \"config\" or \"stage\" field)")
    if not isinstance(meta["stage"], str):
        raise UlmfitError(f"{path}: field \"stage\" must be a string, got {_type(meta['stage'])}")
    config = meta["config"]
    if not isinstance(config, dict):
        hint = " (a preset name? a run dir keeps the whole resolved config)" if isinstance(config, str) else ""
        raise UlmfitError(f"{path}: field \"config\" must be an object, got {_type(config)}{hint}")
    for name, cls in sections.items():
        section = config.get(name, {})
        if not isinstance(section, dict):
            raise UlmfitError(f"{path}: field \"config.{name}\" must be an object, got {_type(section)}")
        defaults = cls()
        for f in fields(cls):
            if f.name in section and not _kind_ok(section[f.name], getattr(defaults, f.name)):
                raise UlmfitError(f"{path}: field \"config.{name}.{f.name}\" must be a "
                                  f"{type(getattr(defaults, f.name)).__name__}, got {_type(section[f.name])}")
    labels = meta.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        raise UlmfitError(f"{path}: field \"labels\" must be a list of strings")


def check_fields(obj, path: Path, kinds: dict) -> None:
    """A JSON object with each of `kinds`' fields, of that type (a type or a tuple of types)."""
    if not isinstance(obj, dict):
        raise UlmfitError(f"{path} holds a JSON {type(obj).__name__}, not an object")
    for name, kind in kinds.items():
        if name not in obj:
            raise UlmfitError(f"{path} has no field \"{name}\"")
        if not isinstance(obj[name], kind) or isinstance(obj[name], bool) and bool not in _tuple(kind):
            raise UlmfitError(f"{path}: field \"{name}\" has the wrong type ({_type(obj[name])})")


def _tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}")


def check_finite_weights(state: dict, path: Path) -> None:
    """Every floating tensor of a state_dict is finite: NaN weights would answer NaN probabilities, exit 0."""
    import torch
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise UlmfitError(f"{path}: tensor {key!r} holds NaN or infinite values; the weights are unusable "
                              "(retrain, or restore the run dir from a copy)")


# ---- JSON request bodies ------------------------------------------------------------------------------------
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 100
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def bounded_json(text: str, max_depth: int = MAX_JSON_DEPTH, max_digits: int = MAX_INT_DIGITS):
    """json.loads, refusing (ValueError, with a message) nesting deeper than `max_depth` and integers longer than
    `max_digits`: the standard parser would overflow the stack, or spend quadratic time, on a hostile body."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):    # brackets outside the strings
        depth += 1 if m.group() in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > max_depth:
            raise ValueError(f"JSON nested deeper than {max_depth} levels")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_digits:
            raise ValueError(f"an integer of {len(digits.lstrip('-')):,} digits (the limit is {max_digits})")
        return int(digits)
    return json.loads(text, parse_int=parse_int)
