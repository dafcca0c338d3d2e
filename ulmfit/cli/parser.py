"""Every command of `ulmfit` and its options, grouped as `ulmfit --help` lists them; `build_parser` puts them together.
Each command's help ends with examples (options.command)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ..config import PRESET_NAMES, STRATEGIES
from .options import (Parser, add_data_args, add_inference_batching, add_int8, add_max_chars, add_no_baseline,
                      add_training_args, command, dataset_help, examples, positive_int, preset_default)


def _add_data_commands(sub) -> None:
    """`data list`, `data download`."""
    data = command(sub, "data", "list and download registry datasets",
                    "ulmfit data list", "ulmfit data download clickbait")
    dsub = data.add_subparsers(dest="action", required=True, parser_class=Parser, metavar="ACTION")
    command(dsub, "list", "the registry, with sizes and licences", "ulmfit data list")
    dl = command(dsub, "download", "fetch a dataset into the cache (from ULMFIT_MIRROR when set)",
                  "ulmfit data download clickbait", "ULMFIT_MIRROR=/data/mirror ulmfit data download wikitext2")
    dl.add_argument("name", metavar="NAME", help=dataset_help(("lm", "labelled")))


def _add_tokenizer_commands(sub) -> None:
    """`tokenizer train`, `tokenizer encode`."""
    tok = command(sub, "tokenizer", "train or try a tokenizer (SentencePiece, or fastai's words)",
                   "ulmfit tokenizer train --dataset wikitext2 --out runs/tok",
                   "ulmfit tokenizer encode runs/tok \"A gripping film\"")
    tsub = tok.add_subparsers(dest="action", required=True, parser_class=Parser, metavar="ACTION")
    tt = command(tsub, "train", "train a tokenizer on a corpus",
                  "ulmfit tokenizer train --dataset wikitext2 --out runs/tok",
                  "ulmfit tokenizer train --train corpus/ --out runs/tok --set tokenizer.vocab_size=4000")
    tt.add_argument("--out", required=True, type=Path, metavar="DIR", help="output dir for tokenizer.model")
    tt.add_argument("--preset", default="small", choices=PRESET_NAMES, help="its vocabulary size and model type")
    tt.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a config field, e.g. --set tokenizer.vocab_size=4000")
    add_data_args(tt, labelled=False)
    te = command(tsub, "encode", "show the pieces of a text", "ulmfit tokenizer encode runs/pre \"A gripping film\"")
    te.add_argument("dir", type=Path, metavar="DIR",
                    help="a dir with tokenizer.model or fastai_vocab.json (a tokenizer or any run dir)")
    te.add_argument("text", help="the text to encode")


def _add_lm_commands(sub) -> None:
    """`lm list|download|import|export`: the published LMs and fastai's files."""
    lm = command(sub, "lm", "published pretrained LMs: download fastai's WikiText-103 model, import or export fastai files",
                  "ulmfit lm download wt103-fwd --out runs/wt103-fwd",
                  "ulmfit lm import --fastai lstm_fwd.pth itos_wt103.pkl --out runs/wt103-fwd",
                  "ulmfit lm export --fastai runs/ft --out fastai_files/")
    lsub = lm.add_subparsers(dest="action", required=True, parser_class=Parser, metavar="ACTION")
    command(lsub, "list", "the published models, with sizes and licences", "ulmfit lm list")
    ld = command(lsub, "download", "fetch a published LM (once, into the cache) and write it as a pretrain run dir",
                  "ulmfit lm download wt103-fwd --out runs/wt103-fwd",
                  "ulmfit lm download wt103-bwd --out runs/wt103-bwd --sha256 HEX_OF_A_COPY_YOU_TRUST")
    ld.add_argument("name", metavar="NAME", choices=("wt103-fwd", "wt103-bwd"), help="wt103-fwd or wt103-bwd")
    ld.add_argument("--out", required=True, type=Path, metavar="DIR", help="the run dir to write")
    ld.add_argument("--sha256", metavar="HEX", help="refuse the archive unless its sha256 is this (none is published)")
    ld.add_argument("--force", action="store_true", help="overwrite --out if it holds a run")
    li = command(lsub, "import", "fastai LM files you have (weights .pth + vocabulary .pkl) -> a pretrain run dir",
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
    le = command(lsub, "export", "a pretrain/finetune run dir with fastai's tokenizer -> files fastai loads",
                  "ulmfit lm export --fastai runs/ft --out fastai_files/")
    le.add_argument("--fastai", required=True, type=Path, metavar="DIR", help="the run dir to export")
    le.add_argument("--out", required=True, type=Path, metavar="DIR",
                    help="where lm_fwd.pth (or lm_bwd.pth) and its _vocab.pkl go")


def _add_stage_commands(sub) -> None:
    """the three stages: `pretrain`, `finetune`, `classify`."""
    p = command(sub, "pretrain", "stage 1: general-domain LM (ULMFiT §3.1)",
                 "ulmfit pretrain --dataset wikitext2 --out runs/pre",
                 "ulmfit pretrain --train corpus/ --preset tiny --max-steps 50 --out runs/smoke",
                 "ulmfit pretrain --dataset wikitext2 --out runs/pre --resume      # continue after a stop")
    add_training_args(p, "pretrain")
    p.add_argument("--tokenizer", type=Path, metavar="DIR",
                   help="a dir with tokenizer.model to reuse instead of training one")
    p = command(sub, "finetune", "stage 2: target-task LM fine-tuning (§3.2)",
                 "ulmfit finetune --pretrained runs/pre --dataset clickbait --out runs/ft",
                 "ulmfit finetune --pretrained runs/pre --train reviews.csv --text-col title body --out runs/ft")
    add_training_args(p, "finetune")
    p.add_argument("--pretrained", required=True, type=Path, metavar="DIR",
                   help="a pretrain run dir, or wt103-fwd / wt103-bwd: fastai's WikiText-103 LM (fetched once)")
    p = command(sub, "classify", "stage 3: classifier with gradual unfreezing (§3.3)",
                 "ulmfit classify --finetuned runs/ft --dataset clickbait --out runs/cls",
                 "ulmfit classify --finetuned runs/ft --train train.csv --test test.csv --label-col stars "
                 "--out runs/cls",
                 "ulmfit classify --pretrained runs/pre --dataset clickbait --strategy full --out runs/cls-full")
    add_training_args(p, "classify")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--finetuned", type=Path, metavar="DIR", help="a finetune run dir")
    src.add_argument("--pretrained", type=Path, metavar="DIR",
                     help="a pretrain run dir or wt103-fwd / wt103-bwd (skips stage 2)")
    src.add_argument("--from-classifier", type=Path, metavar="DIR",
                     help="a classify run dir: start from its encoder (e.g. an IMDb sentiment model for a small "
                          "review dataset); the head starts afresh")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="which layers train when: gradual unfreezing (§3.3), all at once (full), the head only "
                        "(frozen) or chain-thaw " + preset_default("classify", "strategy"))
    p.add_argument("--no-pretraining", action="store_true", help="random encoder weights (ablation baseline)")


def _add_fit_command(sub) -> None:
    """`fit`: LM fine-tuning and the classifier under one budget (fit.py)."""
    p = command(sub, "fit", "your labelled texts and a time budget in, the best classifier it buys out "
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
    add_data_args(p, labelled=True)


def _add_scoring_commands(sub) -> None:
    """`evaluate` and `predict`."""
    p = command(sub, "evaluate", "accuracy, macro-F1, per-class scores, confusion matrix",
                 "ulmfit evaluate runs/cls --dataset clickbait",
                 "ulmfit evaluate runs/cls runs/cls-bwd --data test.csv --label-col stars    # an ensemble")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="classifier dir(s); several are ensembled")
    p.add_argument("--dataset", metavar="NAME", help=dataset_help(("labelled",)))
    p.add_argument("--split", default="test", choices=("train", "valid", "test"), help="the split of --dataset")
    p.add_argument("--data", type=Path, metavar="FILE", help="your own labelled CSV/TSV/JSONL file or class folders")
    p.add_argument("--text-col", nargs="+", default=["text"], metavar="C",
                   help="text column(s) of --data, joined with a newline")
    p.add_argument("--label-col", default="label", metavar="C", help="label column of --data")
    add_inference_batching(p)
    add_max_chars(p)
    add_no_baseline(p)
    add_int8(p, "the classifier(s)")
    p = command(sub, "predict", "labels with probabilities",
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
    add_inference_batching(p)
    add_max_chars(p)
    add_no_baseline(p)
    add_int8(p, "the classifier(s)")


def _add_reading_commands(sub) -> None:
    """`explain` and `generate`."""
    p = command(sub, "explain", "why this label: per-token integrated-gradients attributions",
                 "ulmfit explain runs/cls \"A gripping film\"",
                 "ulmfit explain runs/cls \"A gripping film\" --target neg --steps 96")
    p.add_argument("dir", type=Path, help="a classifier dir")
    p.add_argument("text", help="the text to explain")
    p.add_argument("--target", metavar="LABEL", help="explain this label instead of the predicted one")
    p.add_argument("--steps", type=positive_int, default=48, help="integration steps (more: a smaller gap)")
    add_max_chars(p)
    p = command(sub, "generate", "sample text from an LM dir",
                 "ulmfit generate runs/ft \"The film\" --n-words 30",
                 "ulmfit generate runs/ft \"The film\" --temperature 0               # greedy")
    p.add_argument("dir", type=Path, metavar="DIR", help="a pretrain or finetune run dir")
    p.add_argument("prompt", help="the text to continue")
    p.add_argument("--n-words", type=int, default=50, metavar="N", help="words to add")
    p.add_argument("--temperature", type=float, default=0.8, metavar="T",
                   help="softmax temperature; 0 picks the likeliest token every time")
    p.add_argument("--top-k", type=int, default=40, metavar="K", help="sample among the K likeliest tokens (0: all)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="sampling seed")
    add_int8(p, "the language model")


def _add_serving_commands(sub) -> None:
    """`export` and `serve`."""
    p = command(sub, "export", "a classifier as TorchScript (fp32 or int8), to serve without the training code",
                 "ulmfit export runs/cls --out export/cls",
                 "ulmfit export runs/cls --out export/cls-int8 --int8          # ulmfit.apps.exported.load(DIR) serves it")
    p.add_argument("dir", type=Path, metavar="DIR", help="a classifier dir")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new (or empty) folder for the export")
    add_int8(p, "the exported classifier")
    add_no_baseline(p)
    p = command(sub, "serve", "an HTTP JSON API and a web page for a classifier dir",
                 "ulmfit serve runs/cls                                       # http://127.0.0.1:8000/",
                 "ulmfit serve runs/cls --int8 --port 8080",
                 "ulmfit serve runs/cls --host 0.0.0.0 --max-texts 16           # POST /predict {\"texts\": [...]}")
    p.add_argument("dir", type=Path, metavar="DIR", help="a classifier dir")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free one; the URL is printed)")
    p.add_argument("--max-batch", type=positive_int, default=64, metavar="N",
                   help="texts per micro-batch: concurrent requests share one forward pass")
    p.add_argument("--max-wait-ms", type=float, default=5.0, metavar="MS",
                   help="how long a request waits for others to share its micro-batch")
    p.add_argument("--max-texts", type=positive_int, default=64, metavar="N", help="texts per request")
    p.add_argument("--max-chars", type=positive_int, default=10_000, metavar="N", help="characters per text")
    p.add_argument("--explain-steps", type=positive_int, default=32, metavar="N",
                   help="integration steps of the attributions (\"explain\": true)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch threads (0: torch's default)")
    add_int8(p, "the classifier (attributions stay fp32)")
    add_no_baseline(p)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ulmfit", description="ULMFiT: pretrain, fine-tune and classify with an AWD-LSTM.",
                     epilog=examples("ulmfit fit --train reviews.csv --out runs/my-fit      # the best classifier "
                                      "15 minutes buy, from the shipped LM",
                                      "ulmfit pretrain --dataset wikitext2 --out runs/pre",
                                      "ulmfit finetune --pretrained runs/pre --dataset clickbait --out runs/ft",
                                      "ulmfit classify --finetuned runs/ft --dataset clickbait --out runs/cls",
                                      "ulmfit predict runs/cls \"You won't believe what happened next\"")
                     + "\n\n`ulmfit COMMAND --help` shows a command's options and examples.")
    parser.add_argument("--version", action="version", version=f"ulmfit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    _add_data_commands(sub)
    _add_tokenizer_commands(sub)
    _add_lm_commands(sub)
    _add_stage_commands(sub)
    _add_fit_command(sub)
    _add_scoring_commands(sub)
    _add_reading_commands(sub)
    _add_serving_commands(sub)
    return parser
