"""Classifier inference speed: fp32 vs int8, token-budget vs fixed 64-document batches (issue 17 §1-2).

For the `paper` preset's classifier (and the `small` one), with random weights (speed does not depend on their
values), in fp32 and int8 (`ulmfit.model.quantize`):

  documents/s   for ~15-, ~300- and ~1,000-token documents (lengths uniform within ±20%), through what
                `TextClassifier.predict_proba` runs after tokenizing: length-sorted batches (ClassificationBatches)
                and BPT3C under torch.inference_mode(); batches cut by the token budget (`--max-tokens`, the
                library's default) or by the old fixed 64 documents
  latency       one document of 30 and of 300 tokens, alone: p50 and p95 over `--latency-runs` calls

Tokenizing is not timed (tokenize_throughput.py measures it). Each documents/s figure is the documents over the
median of `--repeats` timed passes, after one untimed batch. Threads: torch's default unless `--threads N`.
Prints a table per preset, the CPU and its flags, then one JSON line; `--out FILE` also writes the output there.

    python benchmarks/inference_speed.py [--presets paper small] [--repeats 3] \
        [--out benchmarks/results/inference_speed.txt]
    python benchmarks/inference_speed.py --quick          # the tiny preset, a few documents: checks the script runs
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ulmfit.text.batching import ClassificationBatches  # noqa: E402
from ulmfit.predict import DEFAULT_MAX_TOKENS, TextClassifier  # noqa: E402
from ulmfit.config import preset  # noqa: E402
from ulmfit.train.evaluate import predict_proba  # noqa: E402
from ulmfit.model.quantize import int8_engine, quantize_classifier  # noqa: E402
from ulmfit.runtime import Runtime, cpu_flags, cpu_name  # noqa: E402

FIXED_BATCH = 64                     # the old batching: 64 documents a batch, whatever their length
LENGTHS = {15: 1024, 300: 256, 1000: 128}      # document length -> documents per pass (2+ fixed batches each)
LATENCY_LENGTHS = (30, 300)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["paper", "small"])
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per figure (the median is kept)")
    parser.add_argument("--latency-runs", type=int, default=50, help="single-document calls per latency figure")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="the token budget per batch")
    parser.add_argument("--batch-size", type=int, default=FIXED_BATCH,
                        help="the budget's cap on documents per batch (the library's default: 64)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="tiny preset, few documents, 1 repeat")
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.presets, args.repeats, args.latency_runs = ["tiny"], 1, 5
    return args


def build_model(preset_name: str) -> TextClassifier:
    config = preset(preset_name, "classify")
    config.model.vocab_size = config.tokenizer.vocab_size        # normally set from the trained tokenizer
    return TextClassifier.from_config(config.model, 2, config.head, config.train.bptt).eval()


def random_corpus(n_docs: int, length: int, vocab_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n_docs documents of length ±20% (at least 1 token) as (ids, offsets), the corpus format of batching.py."""
    rng = np.random.default_rng(seed)
    lengths = np.maximum(1, rng.integers(int(length * 0.8), int(length * 1.2) + 1, n_docs))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return rng.integers(4, vocab_size, offsets[-1]), offsets


def classify_ids(model, ids, offsets, batch_size: int, max_tokens: int | None) -> np.ndarray:
    """What TextClassifier.predict_proba does once the texts are token ids."""
    batches = ClassificationBatches(ids, offsets, None, batch_size, shuffle=False, seed=0, batch_tokens=max_tokens)
    with torch.inference_mode():
        return predict_proba(model, batches, Runtime(device=torch.device("cpu")), len(offsets) - 1)


def docs_per_second(model, corpus, batch_size: int, max_tokens: int | None, repeats: int) -> float:
    ids, offsets = corpus
    n_docs = len(offsets) - 1
    warm = min(batch_size, n_docs)
    classify_ids(model, ids[:offsets[warm]], offsets[:warm + 1], batch_size, max_tokens)      # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        classify_ids(model, ids, offsets, batch_size, max_tokens)
        seconds.append(time.perf_counter() - start)
    return n_docs / statistics.median(seconds)


def latency_ms(model, length: int, runs: int) -> tuple[float, float]:
    """p50 and p95 milliseconds of classifying one document of `length` tokens, alone."""
    ids, offsets = np.random.default_rng(length).integers(4, model.config.vocab_size, length), np.array([0, length])
    classify_ids(model, ids, offsets, 1, DEFAULT_MAX_TOKENS)                       # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        classify_ids(model, ids, offsets, 1, DEFAULT_MAX_TOKENS)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def bench_preset(name: str, args, lengths: dict[int, int], say) -> dict:
    torch.manual_seed(0)
    fp32 = build_model(name)
    models = {"fp32": fp32, "int8": quantize_classifier(copy.deepcopy(fp32))}
    c = fp32.config
    say(f"\npreset {name}: emb {c.emb_size}, hidden {c.hidden_size}, {c.n_layers} layers, vocab {c.vocab_size}, "
        f"bptt {fp32.bptt}, max_len {fp32.max_len}; median of {args.repeats}")
    columns = [(p, m) for p in models for m in ("budget", "fixed")]
    say(f"{'documents/s':<24}" + "".join(f"{p + ' ' + m:>14}" for p, m in columns) + f"{'int8/fp32':>11}")
    result = {}
    for length, n_docs in lengths.items():
        corpus = random_corpus(n_docs, length, c.vocab_size, seed=length)
        row = {f"{p}_{m}": docs_per_second(models[p], corpus, *((args.batch_size, args.max_tokens) if m == "budget"
                                                                 else (FIXED_BATCH, None)), args.repeats)
               for p, m in columns}
        result[f"docs_s_{length}"] = {k: round(v, 2) for k, v in row.items()}
        say(f"{'~' + str(length) + ' tokens (' + str(n_docs) + ' docs)':<24}"
            + "".join(f"{v:>14.1f}" for v in row.values()) + f"{row['int8_budget'] / row['fp32_budget']:>10.2f}x")
    say(f"{'latency, 1 document':<24}" + "".join(f"{p + ' ' + q:>14}" for p in models for q in ("p50 ms", "p95 ms")))
    for length in LATENCY_LENGTHS:
        cells = {p: latency_ms(m, length, args.latency_runs) for p, m in models.items()}
        result[f"latency_ms_{length}"] = {p: {"p50": round(a, 2), "p95": round(b, 2)} for p, (a, b) in cells.items()}
        say(f"{str(length) + ' tokens':<24}" + "".join(f"{a:>14.1f}{b:>14.1f}" for a, b in cells.values()))
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    lines = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    lengths = {15: 8, 300: 4, 1000: 2} if args.quick else LENGTHS
    result = {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "int8_engine": int8_engine(), "max_tokens": args.max_tokens,
              "batch_size": args.batch_size}
    say(f"CPU: {result['cpu']} ({' '.join(result['cpu_flags']) or 'no AVX2'}); torch {torch.__version__}, "
        f"{result['threads']} threads; int8 engine {result['int8_engine']}; batches of at most {args.max_tokens} "
        f"padded tokens and {args.batch_size} documents (budget) vs {FIXED_BATCH} documents (fixed)")
    for name in args.presets:
        result[name] = bench_preset(name, args, lengths, say)
    say(json.dumps(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# python benchmarks/inference_speed.py {' '.join(argv or sys.argv[1:])}\n"
                            + "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
