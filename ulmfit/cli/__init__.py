"""Entry layer (last): the command line. argv -> argparse (parser.py: every command and its options; options.py:
the option groups they share) -> the subcommand's function in commands.py (which builds the config: preset, then
flags, then --set overrides; and calls a `pipeline` function). This file runs it: errors as one line, exit codes,
signals, the one JSON result line. Imports flow one way: cli -> commands, never back.

    ulmfit --version | --help | COMMAND --help  (each command's help ends with examples)
    ulmfit data {list, download NAME}
    ulmfit tokenizer {train, encode}
    ulmfit pretrain | finetune | classify   [--preset P] [--out DIR] [--epochs N] [--max-steps N] [--seed N]
                                            [--threads N] [--precision fp32|bf16|fp16] [--resume | --force]
                                            [--set field=value ...] (--dataset NAME | --train FILE ...)
                                            [--text-col C ...] [--label-col C (classify only)]
    ulmfit evaluate DIR [DIR ...] (--dataset NAME | --data FILE --text-col C --label-col C) [--no-baseline]
                                  [--int8] [--batch-size 64] [--max-tokens 16384]
    ulmfit predict DIR [DIR ...] ("text" ... | --file in.csv --out out.csv) [--no-baseline]
                                 [--int8] [--batch-size 64] [--max-tokens 16384]
    ulmfit explain DIR "text" [--target LABEL] [--steps 48]
    ulmfit generate DIR "prompt" [--n-words 50] [--temperature 0.8] [--top-k 40] [--seed 0] [--int8]
    ulmfit export DIR --out DIR [--int8] [--no-baseline]
    ulmfit serve DIR [--host 127.0.0.1] [--port 8000] [--int8] [--no-baseline] [--max-batch 64] [--max-texts 64] ...

A user error prints one line on stderr and exits with code 2; every command's last stdout line is one JSON object.
"""
from __future__ import annotations

import errno
import functools
import json
import os
import signal
import sys
import warnings
from pathlib import Path

from ..errors import RunFinished, UlmfitError
from .options import NoCommand
from .parser import build_parser

__all__ = ["build_parser", "main", "run"]


def run(args) -> dict:
    from .. import commands
    return getattr(commands, args.command)(args)


class _Terminated(Exception):
    """SIGTERM outside the training loop (which saves first and exits by itself): stop like Ctrl-C does."""


def _raise_terminated(signum, frame):
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    if argv is not None or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return _main(argv)
    # A torchrun worker skips interpreter teardown: the run is saved and the process group left by now, but a gloo
    # thread that outlives the group can abort the exiting process ("terminate called without an active
    # exception", about 1 run in 30 on a loaded machine), turning a finished run into a failed one.
    try:
        code = _main(argv)
    except SystemExit as e:               # a stop by signal (130 / 143), or argparse's usage error
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _format_warning(python_format, message, category, filename, lineno, line=None):
    """ulmfit's own warnings print as one line, like its errors; any other keeps Python's two-line format."""
    if Path(__file__).resolve().parents[1] in Path(filename).resolve().parents:    # any file of the package
        return f"ulmfit: warning: {message}\n"
    return python_format(message, category, filename, lineno, line)


def _main(argv: list[str] | None) -> int:
    try:                                  # not in the main thread (e.g. a notebook worker): keep the default
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        previous = None
    previous_format = warnings.formatwarning
    warnings.formatwarning = functools.partial(_format_warning, previous_format)
    try:
        args = build_parser().parse_args(argv)
        from ..validation import check_args
        check_args(args)                  # argv's texts, decoded once here (docs/input-rules.md)
        result = run(args)
    except RunFinished as e:              # `until ulmfit ... --resume; do :; done` ends here
        from ..checkpoint import CONFIG_FILE, read_json
        from ..config import SECTIONS
        from ..validation import check_run_meta
        try:
            meta = read_json(Path(e.out_dir) / CONFIG_FILE)
            check_run_meta(meta, Path(e.out_dir) / CONFIG_FILE, SECTIONS)    # a tampered one: one line too
        except UlmfitError as bad:
            print(f"ulmfit: error: {bad}", file=sys.stderr)
            return 2
        print(f"ulmfit: {e}", file=sys.stderr)
        result = {"out": str(e.out_dir), "finished": True, **meta.get("results", {})}
    except NoCommand as e:              # bare `ulmfit` (or `ulmfit data`): the commands, then the error line
        print(e.help, file=sys.stderr)
        print(f"ulmfit: error: {e}", file=sys.stderr)
        return 2
    except UlmfitError as e:
        print(f"ulmfit: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"ulmfit: error: no space left on the device ({e.filename or 'while writing'})", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("ulmfit: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("ulmfit: terminated (SIGTERM)", file=sys.stderr)
        return 143
    finally:
        warnings.formatwarning = previous_format
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if result is not None and os.environ.get("RANK", "0") == "0":     # under torchrun, one result line
        try:
            print(json.dumps(result, default=str), flush=True)
        except BrokenPipeError:          # `ulmfit lm list | head`: the reader left early, which is not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # (Python's own recipe, signal docs)
    return 0

if __name__ == "__main__":
    sys.exit(main())
