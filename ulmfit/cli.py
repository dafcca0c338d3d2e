"""Step 11: the command line. Parsing only: subcommand -> preset -> overrides -> a `pipeline` function.

    ulmfit data {list, download NAME}
    ulmfit tokenizer {train, encode}
    ulmfit pretrain | finetune | classify   [--preset P] [--out DIR] [--epochs N] [--max-steps N] [--seed N]
                                            [--threads N] [--precision fp32|bf16|fp16] [--resume | --force]
                                            [--set field=value ...] (--dataset NAME | --train FILE ...)
    ulmfit evaluate DIR [DIR ...] (--dataset NAME | --data FILE --text-col C --label-col C)
    ulmfit predict DIR [DIR ...] ("text" ... | --file in.csv --out out.csv)
    ulmfit generate DIR "prompt" [--n-words 50] [--temperature 0.8] [--top-k 40] [--seed 0]

A user error prints one line on stderr and exits with code 2; every command's last stdout line is one JSON object.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
from pathlib import Path

from .config import PRESET_NAMES, apply_overrides, preset
from .errors import RunFinished, UlmfitError


class _Parser(argparse.ArgumentParser):
    def error(self, message):            # one line, exit 2 (argparse's default prints the usage too)
        raise UlmfitError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_data_args(p, labelled: bool) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="a registry name (see `ulmfit data list`)")
    g.add_argument("--train", nargs="+", default=[], metavar="FILE", help="your own file(s): CSV/TSV/JSONL/text/folder")
    g.add_argument("--valid", metavar="FILE", help="validation file (default: a seeded split of --train)")
    if labelled:
        g.add_argument("--test", metavar="FILE", help="test file, evaluated at the end")
    g.add_argument("--text-col", nargs="+", default=["text"], metavar="C", help="text column(s), joined")
    g.add_argument("--label-col", default="label", metavar="C")


def _add_training_args(p, stage: str) -> None:
    p.add_argument("--preset", default="small", choices=PRESET_NAMES, help="sizes and defaults (default: small)")
    p.add_argument("--out", required=True, type=Path, help="output run dir")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int, help="stop after N optimiser steps (smoke runs)")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite a finished run in --out")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field, e.g. --set lr=2e-3 --set model.dropout_scale=0.5")
    p.add_argument("--backwards", action="store_true", help="train on the reversed token stream")
    _add_data_args(p, labelled=(stage == "classify"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ulmfit", description="ULMFiT: pretrain, fine-tune and classify with an AWD-LSTM.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    data = sub.add_parser("data", help="list and download registry datasets")
    dsub = data.add_subparsers(dest="action", required=True, parser_class=_Parser)
    dsub.add_parser("list", help="the registry, with sizes and licences")
    dl = dsub.add_parser("download", help="fetch a dataset into the cache (from ULMFIT_MIRROR when set)")
    dl.add_argument("name")
    tok = sub.add_parser("tokenizer", help="train or try a SentencePiece tokenizer")
    tsub = tok.add_subparsers(dest="action", required=True, parser_class=_Parser)
    tt = tsub.add_parser("train", help="train a tokenizer on a corpus")
    tt.add_argument("--out", required=True, type=Path)
    tt.add_argument("--preset", default="small", choices=PRESET_NAMES)
    tt.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    _add_data_args(tt, labelled=False)
    te = tsub.add_parser("encode", help="show the pieces of a text")
    te.add_argument("dir", type=Path)
    te.add_argument("text")
    p = sub.add_parser("pretrain", help="stage 1: general-domain LM (ULMFiT §3.1)")
    _add_training_args(p, "pretrain")
    p.add_argument("--tokenizer", type=Path, help="a dir with tokenizer.model to reuse instead of training one")
    p = sub.add_parser("finetune", help="stage 2: target-task LM fine-tuning (§3.2)")
    _add_training_args(p, "finetune")
    p.add_argument("--pretrained", required=True, type=Path)
    p = sub.add_parser("classify", help="stage 3: classifier with gradual unfreezing (§3.3)")
    _add_training_args(p, "classify")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--finetuned", type=Path, help="a finetune run dir")
    src.add_argument("--pretrained", type=Path, help="a pretrain run dir (skips stage 2)")
    src.add_argument("--from-classifier", type=Path, metavar="DIR",
                     help="a classify run dir: start from its encoder (e.g. an IMDb sentiment model for a small "
                          "review dataset); the head starts afresh")
    p.add_argument("--strategy", choices=("gradual", "full", "frozen", "chain-thaw"))
    p.add_argument("--no-pretraining", action="store_true", help="random encoder weights (ablation baseline)")
    p = sub.add_parser("evaluate", help="accuracy, macro-F1, per-class scores, confusion matrix")
    p.add_argument("dirs", nargs="+", type=Path, help="classifier dir(s); several are ensembled")
    p.add_argument("--dataset")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--data", type=Path, metavar="FILE")
    p.add_argument("--text-col", nargs="+", default=["text"], metavar="C")
    p.add_argument("--label-col", default="label", metavar="C")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p = sub.add_parser("predict", help="labels with probabilities")
    p.add_argument("dirs", nargs="+", help="classifier dir(s), then the texts (or use --file)")
    p.add_argument("--file", type=Path, help="CSV/TSV/JSONL/text file of texts")
    p.add_argument("--out", type=Path, help="CSV to write (with --file)")
    p.add_argument("--text-col", nargs="+", default=["text"], metavar="C")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p = sub.add_parser("generate", help="sample text from an LM dir")
    p.add_argument("dir", type=Path)
    p.add_argument("prompt")
    p.add_argument("--n-words", type=int, default=50)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    return parser


def stage_config(args, stage: str):
    """Preset, then the dedicated flags, then --set overrides (type-checked)."""
    overrides = list(args.overrides)
    for flag, name in (("epochs", "epochs"), ("max_steps", "max_steps"), ("seed", "seed"), ("threads", "threads"),
                       ("precision", "precision"), ("strategy", "strategy")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.insert(0, f"train.{name}={value}")
    for flag in ("backwards", "no_pretraining"):
        if getattr(args, flag, False):
            overrides.insert(0, f"train.{flag}=true")
    return apply_overrides(preset(args.preset, stage), overrides)


def _data_spec(args):
    from .pipeline import DataSpec
    if args.dataset and args.train:
        raise UlmfitError("pass either --dataset or --train, not both")
    return DataSpec(dataset=args.dataset, train=list(args.train), valid=args.valid, test=getattr(args, "test", None),
                    text_cols=list(args.text_col), label_col=args.label_col)


def run(args) -> dict:
    from . import commands
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


def _main(argv: list[str] | None) -> int:
    try:                                  # not in the main thread (e.g. a notebook worker): keep the default
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        previous = None
    try:
        args = build_parser().parse_args(argv)
        result = run(args)
    except RunFinished as e:              # `until ulmfit ... --resume; do :; done` ends here
        print(f"ulmfit: {e}", file=sys.stderr)
        from .checkpoint import CONFIG_FILE, read_json
        result = {"out": str(e.out_dir), "finished": True,
                  **read_json(Path(e.out_dir) / CONFIG_FILE).get("results", {})}
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
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if result is not None and os.environ.get("RANK", "0") == "0":     # under torchrun, one result line
        print(json.dumps(result, default=str))
    return 0

if __name__ == "__main__":
    sys.exit(main())
