"""Accuracy against the number of labelled examples (ULMFiT §5, Figure 3, in miniature).

    python benchmarks/sample_efficiency.py --lm runs/finetune-imdb --dataset rt_polarity --out runs/sample-eff \
        [--classifier runs/classify-imdb] [--sizes 100 500 0] [--set epochs=10 ...]

For each training-set size N (0: the whole train split) a class-balanced, seeded sample of N training texts is
drawn; the validation and test splits stay whole. On that sample it trains
  - `ulmfit`: the ULMFiT classifier from the LM in --lm (the paper's recipe);
  - `from-classifier` (with --classifier): the same, starting from another classifier's encoder
    (`ulmfit classify --from-classifier`, sequential transfer from a related labelled task);
  - `tfidf`: TF-IDF word + character n-grams + logistic regression (benchmarks/tfidf_baseline.py).
Every row is scored on the same test split. Prints a table; the last line is JSON.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from tfidf_baseline import tfidf_logreg          # the script's folder is on sys.path when it is run

from ulmfit.config import apply_overrides, preset
from ulmfit.pipeline import DataSpec, classify, labelled_splits


def balanced_sample(labels: list[str], n: int, seed: int) -> list[int]:
    """Indices of n examples, as equal a share per class as n allows, seeded; n <= 0 means all of them."""
    if n <= 0 or n >= len(labels):
        return list(range(len(labels)))
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels))
    by_class = {c: rng.permutation([i for i, y in enumerate(labels) if y == c]).tolist() for c in classes}
    picked = [i for k, c in enumerate(classes) for i in by_class[c][:n // len(classes) + (k < n % len(classes))]]
    return sorted(picked)


def write_csv(path: Path, texts: list[str], labels: list[str]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", type=Path, required=True, help="a pretrain or finetune run dir")
    parser.add_argument("--classifier", type=Path, help="a classify run dir, for the from-classifier rows")
    parser.add_argument("--dataset", default="rt_polarity")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 500, 0])
    parser.add_argument("--seed", type=int, default=0, help="which sample of each size")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    config = apply_overrides(preset(args.preset, "classify"), args.overrides)
    splits = labelled_splits(DataSpec(dataset=args.dataset), config.run.seed, config.train.valid_frac)
    sources = {"ulmfit": (args.lm, False)}
    if args.classifier:
        sources["from-classifier"] = (args.classifier, True)
    rows = []
    for n in args.sizes:
        texts, labels = splits["train"]
        keep = balanced_sample(labels, n, args.seed)
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
        folder = args.out / f"n{len(texts)}"
        folder.mkdir(parents=True, exist_ok=True)
        data = DataSpec(train=[write_csv(folder / "train.csv", texts, labels)],
                        valid=write_csv(folder / "valid.csv", *splits["valid"]),
                        test=write_csv(folder / "test.csv", *splits["test"]))
        for name, (source, from_classifier) in sources.items():
            start = time.perf_counter()
            result = classify(config, source, data, folder / name, force=True, from_classifier=from_classifier)
            rows.append({"n_train": len(texts), "model": name, "test_accuracy": round(result["test_accuracy"], 4),
                         "minutes": round((time.perf_counter() - start) / 60, 2)})
            print(rows[-1], flush=True)
        start = time.perf_counter()
        tfidf = tfidf_logreg().fit(texts, labels)
        accuracy = float((tfidf.predict(splits["test"][0]) == np.array(splits["test"][1])).mean())
        rows.append({"n_train": len(texts), "model": "tfidf", "test_accuracy": round(accuracy, 4),
                     "minutes": round((time.perf_counter() - start) / 60, 2)})
    print(f"\n{'n_train':>8} {'model':<16} {'test acc':>9} {'minutes':>8}")
    for row in rows:
        print(f"{row['n_train']:>8} {row['model']:<16} {row['test_accuracy']:>9.4f} {row['minutes']:>8}")
    print(json.dumps({"dataset": args.dataset, "lm": str(args.lm), "classifier": str(args.classifier),
                      "n_test": len(splits["test"][0]), "rows": rows}))


if __name__ == "__main__":
    main()
