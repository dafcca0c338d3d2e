"""The cost of one long text (issue 30, class 8): seconds per MB of `TextClassifier.predict_proba` on a single text.

BPT3C reads a text's every token through the LSTM, one text per batch row, so a long text runs at batch size one
and its cost is linear in its length. This times `predict_proba` (tokenizing included) on one text of each of
`--kb` sizes, made of IMDb-sample reviews joined end to end, for the `small` preset's classifier with random
weights (speed does not depend on their values) and a SentencePiece tokenizer of the preset's vocabulary trained
here on the same reviews. Prints the table, the CPU, threads, and one JSON line; `--out FILE` writes it too.

    taskset -c 0 python benchmarks/long_text.py --threads 1 --out benchmarks/results/long_text.txt
    python benchmarks/long_text.py --quick          # the tiny preset, small texts: checks the script runs
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ulmfit.data import download as datasets, readers  # noqa: E402
from ulmfit.predict import TextClassifier  # noqa: E402
from ulmfit.config import preset  # noqa: E402
from ulmfit.runtime import cpu_flags, cpu_name  # noqa: E402
from ulmfit.text.tokenizer import train_tokenizer  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--kb", nargs="+", type=int, default=[50, 100, 200], help="text sizes in KB (1000 bytes)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.preset, args.kb = "tiny", [5, 10]
    torch.set_num_threads(args.threads)
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    reviews = readers.read_imdb_sample(datasets.fetch("imdb_sample"))["train"][0]
    config = preset(args.preset, "classify")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(reviews, config.tokenizer, Path(tmp))
    config.model.vocab_size = tokenizer.vocab_size
    torch.manual_seed(0)
    model = TextClassifier.from_config(config.model, 2, config.train).eval()
    model.tokenizer, model.label_names, model.stage_config = tokenizer, ["neg", "pos"], config
    corpus = "\n".join(reviews)
    say(f"# CPU: {cpu_name()} ({' '.join(cpu_flags())}); torch {torch.__version__}, {args.threads} thread(s)"
        + (f", affinity {sorted(os.sched_getaffinity(0))}" if hasattr(os, "sched_getaffinity") else ""))
    c = config.model
    say(f"# model: {args.preset} preset classifier (emb {c.emb_size}, hidden {c.hidden_size}, {c.n_layers} layers, "
        f"vocab {c.vocab_size}), random weights, fp32")
    model.predict_proba([corpus[:2000]])                   # warm-up
    say(f"{'text KB':>8} {'tokens':>8} {'seconds':>8} {'s/MB':>7}")
    rows = []
    for kb in args.kb:
        text = (corpus * (1 + kb * 1000 // len(corpus)))[:kb * 1000]
        n_tokens = len(tokenizer.encode_document(text))
        start = time.perf_counter()
        model.predict_proba([text])
        seconds = time.perf_counter() - start
        mb = len(text.encode("utf-8")) / 1e6
        rows.append({"kb": kb, "tokens": n_tokens, "seconds": round(seconds, 2), "s_per_mb": round(seconds / mb, 1)})
        say(f"{kb:>8} {n_tokens:>8} {seconds:>8.2f} {seconds / mb:>7.1f}")
    say(json.dumps({"preset": args.preset, "threads": args.threads, "cpu": cpu_name(), "rows": rows}))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
