"""What int8 costs in accuracy: fp32 vs int8 (`ulmfit.model.quantize`) on a registry dataset's test split (issue 17 §1).

For each classifier run dir given (and, with several, their average, as `ulmfit evaluate DIR DIR` takes it): the
accuracy in fp32 and in int8, the difference in points, the share of texts whose predicted label is the same in
both, the largest change of a probability, and the seconds each pass took (on the CPU, batched as `predict` does).
Each dir's TF-IDF + LR baseline is averaged in where its run chose it, as `ulmfit evaluate` does, unless
`--no-baseline`. `--limit N` scores a seeded random sample of N test texts (seed `--seed`), said in the output.
Prints a table and one JSON line; `--out FILE` also writes the output there.

    python benchmarks/int8_accuracy.py runs/cls-clickbait --dataset clickbait
    python benchmarks/int8_accuracy.py runs/cls-imdb runs/cls-imdb-bwd --dataset imdb --limit 5000
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ulmfit.predict import TextClassifier  # noqa: E402
from ulmfit.data.dataspec import DataSpec, labelled_splits  # noqa: E402
from ulmfit.runtime import cpu_flags, cpu_name  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="classifier run dir(s), trained on --dataset")
    parser.add_argument("--dataset", required=True, help="a labelled registry dataset, e.g. clickbait or imdb")
    parser.add_argument("--split", default="test", choices=("valid", "test"))
    parser.add_argument("--limit", type=int, help="score a seeded random sample of N texts (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed")
    parser.add_argument("--no-baseline", action="store_true", help="the classifiers alone, without their baseline")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    return parser.parse_args(argv)


def load_texts(dataset: str, split: str, limit: int | None, seed: int) -> tuple[list[str], list[str], str]:
    """The split's texts and labels (the split `ulmfit evaluate --dataset` scores), or a seeded sample of them."""
    texts, labels = labelled_splits(DataSpec(dataset=dataset), seed=0, valid_frac=0.1)[split]
    if limit is None or limit >= len(texts):
        return list(texts), [str(y) for y in labels], f"all {len(texts)} {split} texts"
    pick = np.sort(np.random.default_rng(seed).choice(len(texts), limit, replace=False))
    return ([texts[i] for i in pick], [str(labels[i]) for i in pick],
            f"a random sample of {limit} of the {len(texts)} {split} texts (seed {seed})")


def probabilities(run_dir: Path, texts: list[str], int8: bool, baseline: bool) -> tuple[np.ndarray, list[str], float]:
    model = TextClassifier.from_pretrained(run_dir, device="cpu", baseline=baseline, int8=int8)
    start = time.perf_counter()
    probs = model.predict_proba(texts)
    return probs, model.label_names, time.perf_counter() - start


def compare(name: str, fp32: np.ndarray, int8: np.ndarray, truth: np.ndarray, seconds: tuple[float, float]) -> dict:
    acc = [float((p.argmax(1) == truth).mean()) for p in (fp32, int8)]
    return {"model": name, "fp32_accuracy": round(acc[0], 5), "int8_accuracy": round(acc[1], 5),
            "points": round(100 * (acc[1] - acc[0]), 3),
            "same_prediction": round(float((fp32.argmax(1) == int8.argmax(1)).mean()), 5),
            "max_probability_change": round(float(np.abs(fp32 - int8).max()), 5),
            "fp32_seconds": round(seconds[0], 1), "int8_seconds": round(seconds[1], 1)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    texts, labels, subset = load_texts(args.dataset, args.split, args.limit, args.seed)
    rows, total, names = [], {"fp32": 0, "int8": 0}, None
    for run_dir in args.dirs:
        fp32, names_fp32, t_fp32 = probabilities(run_dir, texts, False, not args.no_baseline)
        int8, _, t_int8 = probabilities(run_dir, texts, True, not args.no_baseline)
        if names is not None and names_fp32 != names:
            raise SystemExit(f"{run_dir} has labels {names_fp32}, unlike {names}")
        names = names_fp32
        unknown = sorted(set(labels) - set(names))
        if unknown:
            raise SystemExit(f"{args.dataset} has labels {unknown[:5]} that {run_dir} does not know ({names})")
        truth = np.array([names.index(y) for y in labels])
        rows.append(compare(str(run_dir), fp32, int8, truth, (t_fp32, t_int8)))
        total = {"fp32": total["fp32"] + fp32, "int8": total["int8"] + int8}
    if len(args.dirs) > 1:
        rows.append(compare("average of the above", total["fp32"] / len(args.dirs), total["int8"] / len(args.dirs),
                            truth, (sum(r["fp32_seconds"] for r in rows), sum(r["int8_seconds"] for r in rows))))
    lines = [f"{args.dataset}: {subset}; {'classifiers alone' if args.no_baseline else 'baselines as each run chose'}; "
             f"CPU: {cpu_name()} ({' '.join(cpu_flags()) or 'no AVX2'}), {torch.get_num_threads()} threads",
             f"{'model':<40} {'fp32 acc':>9} {'int8 acc':>9} {'points':>7} {'same':>8} {'max dp':>7} "
             f"{'fp32 s':>7} {'int8 s':>7}"]
    lines += [f"{r['model'][-40:]:<40} {100 * r['fp32_accuracy']:>8.2f}% {100 * r['int8_accuracy']:>8.2f}% "
              f"{r['points']:>+7.2f} {100 * r['same_prediction']:>7.2f}% {r['max_probability_change']:>7.4f} "
              f"{r['fp32_seconds']:>7.1f} {r['int8_seconds']:>7.1f}" for r in rows]
    result = {"dataset": args.dataset, "subset": subset, "baseline": not args.no_baseline, "cpu": cpu_name(),
              "rows": rows}
    lines.append(json.dumps(result))
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# python benchmarks/int8_accuracy.py {' '.join(argv or sys.argv[1:])}\n"
                            + "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
