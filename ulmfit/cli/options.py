"""The command line's building blocks: argparse's formatter and parser made to give one-line errors, and the option
groups that several commands share (the data flags, the training flags, inference batching, int8, the baseline)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import DEFAULT_MAX_TOKENS, PRESET_NAMES, RUN_FIELDS, preset
from ..data.registry import DATASETS          # names only: the registry imports no torch, so --help stays fast
from ..errors import UlmfitError


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and appends "(default: X)" to an option with a fixed default. The options
    whose default comes from the preset (None here) say so in their own help."""

    def _get_help_string(self, action):
        text, default = action.help or "", action.default
        if (not action.option_strings or "(default" in text or default is None or default is False
                or default == [] or default is argparse.SUPPRESS):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        return text + f" (default: {shown})".replace("%", "%%")

    def add_argument(self, action):
        super().add_argument(action)      # which measures a command name without its indent: "tokenizer" wrapped
        if action.help is not argparse.SUPPRESS:
            for sub in self._iter_indented_subactions(action):
                self._action_max_length = max(self._action_max_length,
                                              len(self._format_action_invocation(sub)) + self._current_indent)


class NoCommand(UlmfitError):
    """`ulmfit` (or `ulmfit data`) without its command: the CLI prints that parser's help, then this one line."""

    def __init__(self, parser, commands):
        super().__init__(f"{where(parser)}no {commands.dest} given: choose one of {', '.join(commands.choices)}")
        self.help = parser.format_help()


def where(parser) -> str:
    """"ulmfit classify" -> "classify: "; the top level adds nothing (the CLI prefixes every error "ulmfit: ")."""
    sub = parser.prog.partition(" ")[2]
    return f"{sub}: " if sub else ""


class Parser(argparse.ArgumentParser):
    """A parsing error is one `UlmfitError` line naming the subcommand and its --help (argparse's default prints
    the usage too, and its own "PROG: error:" prefix)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs):
        self._commands = super().add_subparsers(**kwargs)
        return self._commands

    def error(self, message):
        commands = getattr(self, "_commands", None)
        if commands is not None and message.endswith(f"required: {commands.metavar or commands.dest}"):
            raise NoCommand(self, commands)
        raise UlmfitError(f"{where(self)}{message} (see `{self.prog} --help`)")


def examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def command(sub, name: str, summary: str, *example_lines: str) -> argparse.ArgumentParser:
    """A subcommand whose --help repeats its one-line summary and ends with example command lines."""
    return sub.add_parser(name, help=summary, description=summary, epilog=examples(*example_lines))


def preset_default(stage: str, field: str, show=str) -> str:
    """The help's "(default: ...)" of a flag that, when absent, leaves the preset's value of `field`, in the
    section that holds it (train or run)."""
    section = "run" if field in RUN_FIELDS else "train"
    values = {name: str(show(getattr(getattr(preset(name, stage), section), field))) for name in PRESET_NAMES}
    if len(set(values.values())) == 1:
        return f"(default: {values[PRESET_NAMES[0]]} in every preset)"
    return "(default: from the preset: " + ", ".join(f"{n} {v}" for n, v in values.items()) + ")"


def dataset_help(kinds: tuple[str, ...]) -> str:
    names = [name for name, spec in DATASETS.items() if spec.kind in kinds]
    return f"a registry dataset: {', '.join(names)} (`ulmfit data list` shows sizes and licences)"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_data_args(p, labelled: bool) -> None:
    """--label-col only where labels are read (classify); the LM stages read text columns only."""
    g = p.add_argument_group("data")
    g.add_argument("--dataset", metavar="NAME",
                   help=dataset_help(("labelled",) if labelled else ("lm", "labelled"))
                   + ("" if labelled else "; a labelled dataset gives its texts"))
    g.add_argument("--train", nargs="+", default=[], metavar="FILE",
                   help="your own file(s): " + ("CSV/TSV/JSONL or a folder per class" if labelled
                                                else "text files, folders of .txt, CSV/TSV/JSONL"))
    g.add_argument("--valid", metavar="FILE", help="validation file (default: a seeded split of --train)")
    if labelled:
        g.add_argument("--test", metavar="FILE", help="test file, evaluated at the end")
    g.add_argument("--text-col", nargs="+", default=["text"], metavar="C",
                   help="text column(s) of a CSV/TSV/JSONL file, joined with a newline")
    if labelled:
        g.add_argument("--label-col", default="label", metavar="C", help="label column of a CSV/TSV/JSONL file")


def add_no_baseline(p) -> None:
    p.add_argument("--no-baseline", action="store_true",
                   help="the classifier(s) alone, without the TF-IDF + LR baseline that a run averages in when its "
                        "report found, on the validation split, that the mean beats both")


def add_int8(p, what: str) -> None:
    p.add_argument("--int8", action="store_true",
                   help=f"run {what} with int8 weights on the CPU (torch's dynamic quantization; the "
                        "probabilities shift slightly from fp32's); the run dir is not changed")


def add_max_chars(p) -> None:
    p.add_argument("--max-chars", type=positive_int, metavar="N",
                   help="cut each text to its first N characters, saying how many were cut (default: no cap; a "
                        "long text costs about 70-120 s per MB on one core: docs/input-rules.md)")


def add_inference_batching(p) -> None:
    p.add_argument("--batch-size", type=positive_int, default=64, metavar="N", help="at most N texts per forward pass")
    p.add_argument("--max-tokens", type=positive_int, default=DEFAULT_MAX_TOKENS, metavar="N",
                   help="at most N padded tokens per forward pass (texts x the longest one's length): short texts "
                        "share big batches, long ones go in small ones")


def add_training_args(p, stage: str) -> None:
    p.add_argument("--preset", default="small", choices=PRESET_NAMES,
                   help="model sizes and training settings: paper (fastai's GPU recipe for ULMFiT: hidden 1152, "
                        "batch 52/48, LR 1e-3, Adam beta1 0.8; the paper's own are 1150, 64, 0.004, 0.7), small "
                        "(a CPU run), tiny (smoke)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output run dir")
    p.add_argument("--epochs", type=int, metavar="N", help="training epochs " + preset_default(stage, "epochs"))
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimiser steps (smoke runs) "
                   + preset_default(stage, "max_steps", lambda v: v or "no limit"))
    p.add_argument("--seed", type=int, metavar="N", help="seed of every random draw " + preset_default(stage, "seed"))
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads " + preset_default(stage, "threads", lambda v: v or "torch's choice"))
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                   help="fp32, or bf16/fp16 mixed precision " + preset_default(stage, "precision"))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite a finished run in --out")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field, e.g. --set lr=2e-3 --set model.dropout_scale=0.5")
    p.add_argument("--backwards", action="store_true", help="train on the reversed token stream")
    add_data_args(p, labelled=(stage == "classify"))
