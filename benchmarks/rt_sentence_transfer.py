"""Rotten Tomatoes via IMDb sentences: sentence-level distant supervision, then ULMFiT fine-tuning (beyond the paper).

    python benchmarks/rt_sentence_transfer.py --classifier notebooks/runs/full/classify-imdb-forward \
        --out runs/rt-transfer [--threads 1] [--per-class 60000] [--sources agree extreme pseudo] [--sentence-epochs 2]

Starting from a review-level IMDb classifier (`make classify DATASET=imdb`), for each of three sentence datasets
cut from IMDb reviews (ulmfit/data/distant.py):
  agree    train-review sentences on which the IMDb classifier agrees with the review's label (p >= 0.7)
  extreme  train-review sentences from reviews rated 1-2 or 9-10 stars, with the review's label
  pseudo   sentences of unlabelled reviews the IMDb classifier labels with p >= 0.95, with that label
it trains a sentence classifier (`classify --from-classifier`, all layers, 2 epochs) and scores it zero-shot on
the Rotten Tomatoes test split, then trains the Rotten Tomatoes classifier from it (the default recipe: gradual
unfreezing, 10 epochs). The last row averages the Rotten Tomatoes classifiers' probabilities (as
`ulmfit evaluate A B C` does). Finished runs in --out are reused, so an interrupted run picks up where it stopped.
Prints a table; the last line is JSON.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ulmfit.data import formats
from ulmfit.config import apply_overrides, preset
from ulmfit.data.download import fetch
from ulmfit.data.distant import agreement, balanced_subsample, sentences_with_labels
from ulmfit.predict import classifier_proba, ensemble_proba, load_classifier
from ulmfit.pipeline import DataSpec, classify, labelled_splits

SOURCES = ("agree", "extreme", "pseudo")
# The per-class permutations are drawn pos first: the order the recorded runs (rt_sentence_transfer.txt) used.
CLASS_ORDER = ("pos", "neg")


@lru_cache(maxsize=1)
def imdb_splits() -> dict:
    """{split: (texts, labels, star ratings)} of IMDb, read once (from the mirror or the upstream tarball)."""
    return formats.read_imdb(fetch("imdb"), ratings=True)


def sentence_dataset(source: str, teacher_dir: Path, per_class: int, seed: int) -> tuple[list[str], list[str]]:
    """The (sentences, labels) of one source, balanced between the classes."""
    teacher = None if source == "extreme" else load_classifier(teacher_dir)
    documents, labels, ratings = imdb_splits()["unsup" if source == "pseudo" else "train"]
    if source == "pseudo":              # label whole unlabelled reviews, keep the confident ones
        p_doc = classifier_proba(teacher, documents, batch_size=64)[:, teacher.label_names.index("pos")]
        labels = ["pos" if p >= 0.5 else "neg" for p in p_doc]
        confident = (p_doc >= 0.95) | (p_doc <= 0.05)
        documents = [d for d, c in zip(documents, confident) if c]
        labels = [y for y, c in zip(labels, confident) if c]
    sentences, sentence_labels, doc = sentences_with_labels(documents, labels)
    if source == "agree":
        p = classifier_proba(teacher, sentences, batch_size=256)[:, teacher.label_names.index("pos")]
        keep = agreement(p, sentence_labels) >= 0.7
    elif source == "extreme":
        stars = np.array(ratings)[doc]
        keep = (stars <= 2) | (stars >= 9)
    else:
        keep = np.ones(len(sentences), dtype=bool)
    idx = balanced_subsample(sentence_labels, keep, per_class, seed, classes=CLASS_ORDER)
    return [sentences[i] for i in idx], [sentence_labels[i] for i in idx]


def write_csv(path: Path, texts: list[str], labels: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels))


def accuracy(probs: np.ndarray, label_names: list[str], labels: list[str]) -> float:
    return float((np.array(label_names)[probs.argmax(1)] == np.array(labels)).mean())


def finished(run_dir: Path) -> bool:
    return (run_dir / "config.json").is_file() and (run_dir / "model.pt").is_file()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", type=Path, required=True, help="a review-level IMDb classify run dir")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--per-class", type=int, default=60000, help="sentences per class in each dataset")
    parser.add_argument("--sentence-epochs", type=int, default=2, help="epochs of each sentence classifier")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = [f"threads={args.threads}", f"seed={args.seed}"]
    sentence_config = apply_overrides(preset("small", "classify"),
                                      overrides + ["strategy=full", f"epochs={args.sentence_epochs}",
                                                                  "max_minutes=45"])
    rt_config = apply_overrides(preset("small", "classify"), overrides + ["epochs=10"])
    rt_test = labelled_splits(DataSpec(dataset="rt_polarity"), rt_config.run.seed,
                              rt_config.train.valid_frac)["test"]
    rows, rt_dirs = [], []
    for source in args.sources:
        folder = args.out / source
        start = time.perf_counter()
        data_csv = folder / "sentences.csv"
        if not data_csv.is_file():
            write_csv(data_csv, *sentence_dataset(source, args.classifier, args.per_class, args.seed))
        sha = hashlib.sha256(data_csv.read_bytes()).hexdigest()
        if not finished(folder / "sentences"):
            classify(sentence_config, args.classifier, DataSpec(train=[str(data_csv)]), folder / "sentences",
                     force=True, from_classifier=True)
        sentence_model = load_classifier(folder / "sentences")
        zero_shot = accuracy(classifier_proba(sentence_model, rt_test[0]), sentence_model.label_names, rt_test[1])
        if not finished(folder / "rt"):
            classify(rt_config, folder / "sentences", DataSpec(dataset="rt_polarity"), folder / "rt", force=True,
                     from_classifier=True)
        rt_model = load_classifier(folder / "rt")
        test = accuracy(classifier_proba(rt_model, rt_test[0]), rt_model.label_names, rt_test[1])
        rt_dirs.append(folder / "rt")
        rows.append({"source": source, "n_sentences": sum(1 for _ in open(data_csv)) - 1, "sha256": sha[:16],
                     "zero_shot_test_accuracy": round(zero_shot, 4), "test_accuracy": round(test, 4),
                     "minutes": round((time.perf_counter() - start) / 60, 1)})
        print(rows[-1], flush=True)
    probs, label_names = ensemble_proba(rt_dirs, rt_test[0])
    ensemble = accuracy(probs, label_names, rt_test[1])
    print(f"\n{'source':<10} {'sentences':>9} {'zero-shot':>9} {'test acc':>9} {'minutes':>8}")
    for row in rows:
        print(f"{row['source']:<10} {row['n_sentences']:>9} {row['zero_shot_test_accuracy']:>9.4f} "
              f"{row['test_accuracy']:>9.4f} {row['minutes']:>8}")
    print(f"{'ensemble':<10} {'':>9} {'':>9} {ensemble:>9.4f}")
    print(json.dumps({"classifier": str(args.classifier), "n_test": len(rt_test[0]), "rows": rows,
                      "ensemble_test_accuracy": round(ensemble, 4)}))


if __name__ == "__main__":
    main()
