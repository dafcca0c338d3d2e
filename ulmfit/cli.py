"""Entry layer (last): the command line. Parsing only: argv -> argparse -> the subcommand's function in commands.py
(which builds the config: preset, then flags, then --set overrides; and calls a `pipeline` function). Imports flow one
way: cli -> commands, never back.

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

import argparse
import errno
import functools
import json
import os
import signal
import sys
import warnings
from pathlib import Path

from . import __version__
from .config import DEFAULT_MAX_TOKENS, PRESET_NAMES, STRATEGIES, preset
from .errors import RunFinished, UlmfitError
from .data.registry import DATASETS          # names only: the registry imports no torch, so --help stays fast


class _Formatter(argparse.RawDescriptionHelpFormatter):
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


class _NoCommand(UlmfitError):
    """`ulmfit` (or `ulmfit data`) without its command: the CLI prints that parser's help, then this one line."""

    def __init__(self, parser, commands):
        super().__init__(f"{_where(parser)}no {commands.dest} given: choose one of {', '.join(commands.choices)}")
        self.help = parser.format_help()


def _where(parser) -> str:
    """"ulmfit classify" -> "classify: "; the top level adds nothing (the CLI prefixes every error "ulmfit: ")."""
    sub = parser.prog.partition(" ")[2]
    return f"{sub}: " if sub else ""


class _Parser(argparse.ArgumentParser):
    """A parsing error is one `UlmfitError` line naming the subcommand and its --help (argparse's default prints
    the usage too, and its own "PROG: error:" prefix)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs):
        self._commands = super().add_subparsers(**kwargs)
        return self._commands

    def error(self, message):
        commands = getattr(self, "_commands", None)
        if commands is not None and message.endswith(f"required: {commands.metavar or commands.dest}"):
            raise _NoCommand(self, commands)
        raise UlmfitError(f"{_where(self)}{message} (see `{self.prog} --help`)")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _command(sub, name: str, summary: str, *examples: str) -> argparse.ArgumentParser:
    """A subcommand whose --help repeats its one-line summary and ends with example command lines."""
    return sub.add_parser(name, help=summary, description=summary, epilog=_examples(*examples))


def _preset_default(stage: str, field: str, show=str) -> str:
    """The help's "(default: ...)" of a flag that, when absent, leaves the preset's value of train.<field>."""
    values = {name: str(show(getattr(preset(name, stage).train, field))) for name in PRESET_NAMES}
    if len(set(values.values())) == 1:
        return f"(default: {values[PRESET_NAMES[0]]} in every preset)"
    return "(default: from the preset: " + ", ".join(f"{n} {v}" for n, v in values.items()) + ")"


def _dataset_help(kinds: tuple[str, ...]) -> str:
    names = [name for name, spec in DATASETS.items() if spec.kind in kinds]
    return f"a registry dataset: {', '.join(names)} (`ulmfit data list` shows sizes and licences)"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_data_args(p, labelled: bool) -> None:
    """--label-col only where labels are read (classify); the LM stages read text columns only."""
    g = p.add_argument_group("data")
    g.add_argument("--dataset", metavar="NAME",
                   help=_dataset_help(("labelled",) if labelled else ("lm", "labelled"))
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


def _add_no_baseline(p) -> None:
    p.add_argument("--no-baseline", action="store_true",
                   help="the classifier(s) alone, without the TF-IDF + LR baseline that a run averages in when its "
                        "report found, on the validation split, that the mean beats both")


def _add_int8(p, what: str) -> None:
    p.add_argument("--int8", action="store_true",
                   help=f"run {what} with int8 weights on the CPU (torch's dynamic quantization; the "
                        "probabilities shift slightly from fp32's); the run dir is not changed")


def _add_max_chars(p) -> None:
    p.add_argument("--max-chars", type=_positive_int, metavar="N",
                   help="cut each text to its first N characters, saying how many were cut (default: no cap; a "
                        "long text costs about 70-120 s per MB on one core: docs/input-rules.md)")


def _add_inference_batching(p) -> None:
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="N", help="at most N texts per forward pass")
    p.add_argument("--max-tokens", type=_positive_int, default=DEFAULT_MAX_TOKENS, metavar="N",
                   help="at most N padded tokens per forward pass (texts x the longest one's length): short texts "
                        "share big batches, long ones go in small ones")


def _add_training_args(p, stage: str) -> None:
    p.add_argument("--preset", default="small", choices=PRESET_NAMES,
                   help="model sizes and training settings: paper (fastai's GPU recipe for ULMFiT: hidden 1152, "
                        "batch 52/48, LR 1e-3, Adam beta1 0.8; the paper's own are 1150, 64, 0.004, 0.7), small "
                        "(a CPU run), tiny (smoke)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output run dir")
    p.add_argument("--epochs", type=int, metavar="N", help="training epochs " + _preset_default(stage, "epochs"))
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimiser steps (smoke runs) "
                   + _preset_default(stage, "max_steps", lambda v: v or "no limit"))
    p.add_argument("--seed", type=int, metavar="N", help="seed of every random draw " + _preset_default(stage, "seed"))
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads " + _preset_default(stage, "threads", lambda v: v or "torch's choice"))
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                   help="fp32, or bf16/fp16 mixed precision " + _preset_default(stage, "precision"))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite a finished run in --out")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field, e.g. --set lr=2e-3 --set model.dropout_scale=0.5")
    p.add_argument("--backwards", action="store_true", help="train on the reversed token stream")
    _add_data_args(p, labelled=(stage == "classify"))


def _add_data_commands(sub) -> None:
    """`data list`, `data download`."""
    data = _command(sub, "data", "list and download registry datasets",
                    "ulmfit data list", "ulmfit data download clickbait")
    dsub = data.add_subparsers(dest="action", required=True, parser_class=_Parser, metavar="ACTION")
    _command(dsub, "list", "the registry, with sizes and licences", "ulmfit data list")
    dl = _command(dsub, "download", "fetch a dataset into the cache (from ULMFIT_MIRROR when set)",
                  "ulmfit data download clickbait", "ULMFIT_MIRROR=/data/mirror ulmfit data download wikitext2")
    dl.add_argument("name", metavar="NAME", help=_dataset_help(("lm", "labelled")))


def _add_tokenizer_commands(sub) -> None:
    """`tokenizer train`, `tokenizer encode`."""
    tok = _command(sub, "tokenizer", "train or try a tokenizer (SentencePiece, or fastai's words)",
                   "ulmfit tokenizer train --dataset wikitext2 --out runs/tok",
                   "ulmfit tokenizer encode runs/tok \"A gripping film\"")
    tsub = tok.add_subparsers(dest="action", required=True, parser_class=_Parser, metavar="ACTION")
    tt = _command(tsub, "train", "train a tokenizer on a corpus",
                  "ulmfit tokenizer train --dataset wikitext2 --out runs/tok",
                  "ulmfit tokenizer train --train corpus/ --out runs/tok --set tokenizer.vocab_size=4000")
    tt.add_argument("--out", required=True, type=Path, metavar="DIR", help="output dir for tokenizer.model")
    tt.add_argument("--preset", default="small", choices=PRESET_NAMES, help="its vocabulary size and model type")
    tt.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a config field, e.g. --set tokenizer.vocab_size=4000")
    _add_data_args(tt, labelled=False)
    te = _command(tsub, "encode", "show the pieces of a text", "ulmfit tokenizer encode runs/pre \"A gripping film\"")
    te.add_argument("dir", type=Path, metavar="DIR",
                    help="a dir with tokenizer.model or fastai_vocab.json (a tokenizer or any run dir)")
    te.add_argument("text", help="the text to encode")


def _add_lm_commands(sub) -> None:
    """`lm list|download|import|export`: the published LMs and fastai's files."""
    lm = _command(sub, "lm", "published pretrained LMs: download fastai's WikiText-103 model, import or export fastai files",
                  "ulmfit lm download wt103-fwd --out runs/wt103-fwd",
                  "ulmfit lm import --fastai lstm_fwd.pth itos_wt103.pkl --out runs/wt103-fwd",
                  "ulmfit lm export --fastai runs/ft --out fastai_files/")
    lsub = lm.add_subparsers(dest="action", required=True, parser_class=_Parser, metavar="ACTION")
    _command(lsub, "list", "the published models, with sizes and licences", "ulmfit lm list")
    ld = _command(lsub, "download", "fetch a published LM (once, into the cache) and write it as a pretrain run dir",
                  "ulmfit lm download wt103-fwd --out runs/wt103-fwd",
                  "ulmfit lm download wt103-bwd --out runs/wt103-bwd --sha256 HEX_OF_A_COPY_YOU_TRUST")
    ld.add_argument("name", metavar="NAME", choices=("wt103-fwd", "wt103-bwd"), help="wt103-fwd or wt103-bwd")
    ld.add_argument("--out", required=True, type=Path, metavar="DIR", help="the run dir to write")
    ld.add_argument("--sha256", metavar="HEX", help="refuse the archive unless its sha256 is this (none is published)")
    ld.add_argument("--force", action="store_true", help="overwrite --out if it holds a run")
    li = _command(lsub, "import", "fastai LM files you have (weights .pth + vocabulary .pkl) -> a pretrain run dir",
                  "ulmfit lm import --fastai lstm_fwd.pth itos_wt103.pkl --out runs/wt103-fwd",
                  "ulmfit lm import --fastai lstm_bwd.pth itos_wt103.pkl --backwards --out runs/wt103-bwd")
    li.add_argument("--fastai", nargs=2, required=True, type=Path, metavar=("WEIGHTS.pth", "VOCAB.pkl"),
                    help="fastai's weights and vocabulary pickle (read without running code)")
    li.add_argument("--out", required=True, type=Path, metavar="DIR", help="the run dir to write")
    li.add_argument("--preset", default="paper", choices=PRESET_NAMES,
                    help="the architecture the weights must fit (default: paper, fastai's wt103 model's: hidden 1152)")
    li.add_argument("--backwards", action="store_true", help="the model reads text backwards (wt103-bwd)")
    li.add_argument("--rules", default="auto", choices=("auto", "fastai_v1", "fastai_v2"),
                    help="the tokenization rules the model was trained with (default auto: fastai_v1 for a file "
                         "saved by fastai v1, as wt103's, else fastai_v2)")
    li.add_argument("--force", action="store_true", help="overwrite --out if it holds a run")
    le = _command(lsub, "export", "a pretrain/finetune run dir with fastai's tokenizer -> files fastai loads",
                  "ulmfit lm export --fastai runs/ft --out fastai_files/")
    le.add_argument("--fastai", required=True, type=Path, metavar="DIR", help="the run dir to export")
    le.add_argument("--out", required=True, type=Path, metavar="DIR",
                    help="where lm_fwd.pth (or lm_bwd.pth) and its _vocab.pkl go")


def _add_stage_commands(sub) -> None:
    """the three stages: `pretrain`, `finetune`, `classify`."""
    p = _command(sub, "pretrain", "stage 1: general-domain LM (ULMFiT §3.1)",
                 "ulmfit pretrain --dataset wikitext2 --out runs/pre",
                 "ulmfit pretrain --train corpus/ --preset tiny --max-steps 50 --out runs/smoke",
                 "ulmfit pretrain --dataset wikitext2 --out runs/pre --resume      # continue after a stop")
    _add_training_args(p, "pretrain")
    p.add_argument("--tokenizer", type=Path, metavar="DIR",
                   help="a dir with tokenizer.model to reuse instead of training one")
    p = _command(sub, "finetune", "stage 2: target-task LM fine-tuning (§3.2)",
                 "ulmfit finetune --pretrained runs/pre --dataset clickbait --out runs/ft",
                 "ulmfit finetune --pretrained runs/pre --train reviews.csv --text-col title body --out runs/ft")
    _add_training_args(p, "finetune")
    p.add_argument("--pretrained", required=True, type=Path, metavar="DIR",
                   help="a pretrain run dir, or wt103-fwd / wt103-bwd: fastai's WikiText-103 LM (fetched once)")
    p = _command(sub, "classify", "stage 3: classifier with gradual unfreezing (§3.3)",
                 "ulmfit classify --finetuned runs/ft --dataset clickbait --out runs/cls",
                 "ulmfit classify --finetuned runs/ft --train train.csv --test test.csv --label-col stars "
                 "--out runs/cls",
                 "ulmfit classify --pretrained runs/pre --dataset clickbait --strategy full --out runs/cls-full")
    _add_training_args(p, "classify")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--finetuned", type=Path, metavar="DIR", help="a finetune run dir")
    src.add_argument("--pretrained", type=Path, metavar="DIR",
                     help="a pretrain run dir or wt103-fwd / wt103-bwd (skips stage 2)")
    src.add_argument("--from-classifier", type=Path, metavar="DIR",
                     help="a classify run dir: start from its encoder (e.g. an IMDb sentiment model for a small "
                          "review dataset); the head starts afresh")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="which layers train when: gradual unfreezing (§3.3), all at once (full), the head only "
                        "(frozen) or chain-thaw " + _preset_default("classify", "strategy"))
    p.add_argument("--no-pretraining", action="store_true", help="random encoder weights (ablation baseline)")


def _add_fit_command(sub) -> None:
    """`fit`: LM fine-tuning and the classifier under one budget (fit.py)."""
    p = _command(sub, "fit", "your labelled texts and a time budget in, the best classifier it buys out "
                 "(LM fine-tuning + classifier from the shipped LM)",
                 "ulmfit fit --train reviews.csv --out runs/my-fit                 # 15 minutes",
                 "ulmfit fit --train train.csv --valid valid.csv --test test.csv --label-col stars --minutes 30 "
                 "--out runs/my-fit",
                 "ulmfit fit --train labelled.csv --unlabelled more_reviews.txt --out runs/my-fit")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="the run dir to write")
    p.add_argument("--minutes", default="15", metavar="M",
                   help="wall-clock budget, tokenizing, both stages, the baseline and the report included "
                        "(default: 15)")
    p.add_argument("--pretrained", metavar="NAME|DIR",
                   help="the starting LM: a shipped one (ulmfit-wiki-fwd, the default), wt103-fwd, or a run dir")
    p.add_argument("--unlabelled", nargs="+", default=[], metavar="FILE",
                   help="unlabelled text of the same kind, for LM fine-tuning (§3.2): one text per line, or a "
                        "CSV/TSV/JSONL with a text column")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of every random draw (default: 0)")
    p.add_argument("--backwards", action="store_true", help="read the texts backwards (with a backward LM)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="(default: fp32)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch threads (0: torch's default)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    _add_data_args(p, labelled=True)


def _add_scoring_commands(sub) -> None:
    """`evaluate` and `predict`."""
    p = _command(sub, "evaluate", "accuracy, macro-F1, per-class scores, confusion matrix",
                 "ulmfit evaluate runs/cls --dataset clickbait",
                 "ulmfit evaluate runs/cls runs/cls-bwd --data test.csv --label-col stars    # an ensemble")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="classifier dir(s); several are ensembled")
    p.add_argument("--dataset", metavar="NAME", help=_dataset_help(("labelled",)))
    p.add_argument("--split", default="test", choices=("train", "valid", "test"), help="the split of --dataset")
    p.add_argument("--data", type=Path, metavar="FILE", help="your own labelled CSV/TSV/JSONL file or class folders")
    p.add_argument("--text-col", nargs="+", default=["text"], metavar="C",
                   help="text column(s) of --data, joined with a newline")
    p.add_argument("--label-col", default="label", metavar="C", help="label column of --data")
    _add_inference_batching(p)
    _add_max_chars(p)
    _add_no_baseline(p)
    _add_int8(p, "the classifier(s)")
    p = _command(sub, "predict", "labels with probabilities",
                 "ulmfit predict runs/cls \"A gripping film\" \"A dull film\"",
                 "ulmfit predict runs/cls --file new.csv                      # one line per text",
                 "ulmfit predict runs/cls runs/cls-bwd --file new.csv --out predictions.csv",
                 "ulmfit predict runs/cls --file new.csv --int8                # int8 on the CPU")
    p.add_argument("dirs", nargs="+", metavar="DIR_OR_TEXT", help="classifier dir(s), then the texts (or use --file)")
    p.add_argument("--file", type=Path, help="CSV/TSV/JSONL file, folder per class, or .txt (a text per line)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="with --file: write the input's columns plus prediction, probability and p_<label> "
                        "(CSV; TSV or JSONL by suffix)")
    p.add_argument("--text-col", nargs="+", default=["text"], metavar="C",
                   help="text column(s) of --file, joined with a newline")
    _add_inference_batching(p)
    _add_max_chars(p)
    _add_no_baseline(p)
    _add_int8(p, "the classifier(s)")


def _add_reading_commands(sub) -> None:
    """`explain` and `generate`."""
    p = _command(sub, "explain", "why this label: per-token integrated-gradients attributions",
                 "ulmfit explain runs/cls \"A gripping film\"",
                 "ulmfit explain runs/cls \"A gripping film\" --target neg --steps 96")
    p.add_argument("dir", type=Path, help="a classifier dir")
    p.add_argument("text", help="the text to explain")
    p.add_argument("--target", metavar="LABEL", help="explain this label instead of the predicted one")
    p.add_argument("--steps", type=_positive_int, default=48, help="integration steps (more: a smaller gap)")
    _add_max_chars(p)
    p = _command(sub, "generate", "sample text from an LM dir",
                 "ulmfit generate runs/ft \"The film\" --n-words 30",
                 "ulmfit generate runs/ft \"The film\" --temperature 0               # greedy")
    p.add_argument("dir", type=Path, metavar="DIR", help="a pretrain or finetune run dir")
    p.add_argument("prompt", help="the text to continue")
    p.add_argument("--n-words", type=int, default=50, metavar="N", help="words to add")
    p.add_argument("--temperature", type=float, default=0.8, metavar="T",
                   help="softmax temperature; 0 picks the likeliest token every time")
    p.add_argument("--top-k", type=int, default=40, metavar="K", help="sample among the K likeliest tokens (0: all)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="sampling seed")
    _add_int8(p, "the language model")


def _add_serving_commands(sub) -> None:
    """`export` and `serve`."""
    p = _command(sub, "export", "a classifier as TorchScript (fp32 or int8), to serve without the training code",
                 "ulmfit export runs/cls --out export/cls",
                 "ulmfit export runs/cls --out export/cls-int8 --int8          # ulmfit.apps.exported.load(DIR) serves it")
    p.add_argument("dir", type=Path, metavar="DIR", help="a classifier dir")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new (or empty) folder for the export")
    _add_int8(p, "the exported classifier")
    _add_no_baseline(p)
    p = _command(sub, "serve", "an HTTP JSON API and a web page for a classifier dir",
                 "ulmfit serve runs/cls                                       # http://127.0.0.1:8000/",
                 "ulmfit serve runs/cls --int8 --port 8080",
                 "ulmfit serve runs/cls --host 0.0.0.0 --max-texts 16           # POST /predict {\"texts\": [...]}")
    p.add_argument("dir", type=Path, metavar="DIR", help="a classifier dir")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free one; the URL is printed)")
    p.add_argument("--max-batch", type=_positive_int, default=64, metavar="N",
                   help="texts per micro-batch: concurrent requests share one forward pass")
    p.add_argument("--max-wait-ms", type=float, default=5.0, metavar="MS",
                   help="how long a request waits for others to share its micro-batch")
    p.add_argument("--max-texts", type=_positive_int, default=64, metavar="N", help="texts per request")
    p.add_argument("--max-chars", type=_positive_int, default=10_000, metavar="N", help="characters per text")
    p.add_argument("--explain-steps", type=_positive_int, default=32, metavar="N",
                   help="integration steps of the attributions (\"explain\": true)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch threads (0: torch's default)")
    _add_int8(p, "the classifier (attributions stay fp32)")
    _add_no_baseline(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ulmfit", description="ULMFiT: pretrain, fine-tune and classify with an AWD-LSTM.",
                     epilog=_examples("ulmfit fit --train reviews.csv --out runs/my-fit      # the best classifier "
                                      "15 minutes buy, from the shipped LM",
                                      "ulmfit pretrain --dataset wikitext2 --out runs/pre",
                                      "ulmfit finetune --pretrained runs/pre --dataset clickbait --out runs/ft",
                                      "ulmfit classify --finetuned runs/ft --dataset clickbait --out runs/cls",
                                      "ulmfit predict runs/cls \"You won't believe what happened next\"")
                     + "\n\n`ulmfit COMMAND --help` shows a command's options and examples.")
    parser.add_argument("--version", action="version", version=f"ulmfit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    _add_data_commands(sub)
    _add_tokenizer_commands(sub)
    _add_lm_commands(sub)
    _add_stage_commands(sub)
    _add_fit_command(sub)
    _add_scoring_commands(sub)
    _add_reading_commands(sub)
    _add_serving_commands(sub)
    return parser

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


def _format_warning(python_format, message, category, filename, lineno, line=None):
    """ulmfit's own warnings print as one line, like its errors; any other keeps Python's two-line format."""
    if Path(__file__).resolve().parent in Path(filename).resolve().parents:       # any file of the package
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
        from .validation import check_args
        check_args(args)                  # argv's texts, decoded once here (docs/input-rules.md)
        result = run(args)
    except RunFinished as e:              # `until ulmfit ... --resume; do :; done` ends here
        from .checkpoint import CONFIG_FILE, read_json
        from .config import SECTIONS
        from .validation import check_run_meta
        try:
            meta = read_json(Path(e.out_dir) / CONFIG_FILE)
            check_run_meta(meta, Path(e.out_dir) / CONFIG_FILE, SECTIONS)    # a tampered one: one line too
        except UlmfitError as bad:
            print(f"ulmfit: error: {bad}", file=sys.stderr)
            return 2
        print(f"ulmfit: {e}", file=sys.stderr)
        result = {"out": str(e.out_dir), "finished": True, **meta.get("results", {})}
    except _NoCommand as e:              # bare `ulmfit` (or `ulmfit data`): the commands, then the error line
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
