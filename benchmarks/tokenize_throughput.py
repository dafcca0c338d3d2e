"""Benchmark: tokenise + numericalise WikiText-2 train (10.8 MB) with 1 and 2 processes (issue 2, §3).

Reports tokens/s, MB/s (of the raw wiki.train.tokens bytes), the projected time for WikiText-103 train
(540 MB), and peak RSS (ru_maxrss of this process + the largest child). Target: WikiText-103 in < 10 min
on 2 cores (>= 0.9 MB/s) with peak RSS < 2 GB. Reads the data mirror ($ULMFIT_MIRROR, else ../shared/data).

    python benchmarks/tokenize.py [--vocab-size 30000] [--processes 1 2]

Prints a table, then one JSON line.
"""
from __future__ import annotations

import sys
from pathlib import Path

# This file shadows the stdlib `tokenize` module for anything imported from its folder: put the repo root
# in the script folder's place on sys.path (also lets it run from a checkout without installing).
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from ulmfit.config import TokenizerConfig  # noqa: E402
from ulmfit.data.formats import read_wikitext  # noqa: E402
from ulmfit.text.tokenizer import Tokenizer  # noqa: E402

WT103_TRAIN_BYTES = 540e6


def peak_rss_mb() -> float:
    """ru_maxrss is in KiB on Linux: self plus the largest child (the pool workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=30000)
    parser.add_argument("--model-type", default="unigram")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    mirror = Path(os.environ.get("ULMFIT_MIRROR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    folder = mirror / "wikitext2"
    if not (folder / "wiki.train.tokens.gz").is_file():
        sys.exit(f"no WikiText-2 at {folder}; set ULMFIT_MIRROR")
    raw_bytes = len(gzip.decompress((folder / "wiki.train.tokens.gz").read_bytes()))
    docs = read_wikitext(folder, "2")["train"]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tok = Tokenizer.train(docs, TokenizerConfig(vocab_size=args.vocab_size, model_type=args.model_type),
                              Path(tmp) / "tok")
        train_s = time.perf_counter() - t0
        for p in args.processes:
            t0 = time.perf_counter()
            ids, offsets = tok.encode_corpus(docs, Path(tmp) / f"wt2_p{p}", processes=p, desc=f"{p} proc")
            seconds = time.perf_counter() - t0
            mb_s = raw_bytes / 1e6 / seconds
            rows.append(dict(processes=p, seconds=round(seconds, 2), tokens=int(len(ids)),
                             tokens_per_s=round(len(ids) / seconds), mb_per_s=round(mb_s, 2),
                             wt103_minutes=round(WT103_TRAIN_BYTES / 1e6 / mb_s / 60, 1),
                             dtype=str(ids.dtype)))
            del ids, offsets

    print(f"WikiText-2 train: {raw_bytes / 1e6:.1f} MB, {len(docs)} articles; tokenizer {args.model_type} "
          f"vocab {tok.vocab_size} trained in {train_s:.1f} s")
    print(f"{'procs':>5} {'seconds':>8} {'tokens':>10} {'tokens/s':>10} {'MB/s':>6} {'WT103 min':>9}")
    for r in rows:
        print(f"{r['processes']:>5} {r['seconds']:>8} {r['tokens']:>10} {r['tokens_per_s']:>10} "
              f"{r['mb_per_s']:>6} {r['wt103_minutes']:>9}")
    best2 = max((r for r in rows if r["processes"] <= 2), key=lambda r: r["mb_per_s"])
    result = dict(benchmark="tokenize", corpus="wikitext2/train", mb=round(raw_bytes / 1e6, 2),
                  vocab_size=tok.vocab_size, tokenizer_train_s=round(train_s, 1), runs=rows,
                  peak_rss_mb=round(peak_rss_mb()), target_mb_per_s=0.9,
                  meets_target=bool(best2["mb_per_s"] >= 0.9 and peak_rss_mb() < 2048))
    print(f"peak RSS {result['peak_rss_mb']} MB; target >= 0.9 MB/s on 2 cores and < 2 GB: "
          f"{'met' if result['meets_target'] else 'NOT met'}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
