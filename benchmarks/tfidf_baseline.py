"""The classical baseline ULMFiT is compared with: TF-IDF on word and character n-grams + logistic regression.

    python benchmarks/tfidf_baseline.py [--datasets clickbait rt_polarity imdb]

Same splits as `ulmfit classify --dataset NAME` (train + valid to fit, the test split to score). The features and
the model are the library's (`ulmfit.analysis.baseline`, the baseline every classify run's report.md shows), here with the
fixed C=10 on train + valid rather than C chosen on valid. Needs scikit-learn (`pip install ulmfit[baseline]`).
Prints a table; the last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import time

from ulmfit.analysis.baseline import tfidf_logreg  # noqa: F401 (sample_efficiency.py imports it from here too)
from ulmfit.data.download import load_labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["clickbait", "rt_polarity"])
    args = parser.parse_args()
    results = {}
    for name in args.datasets:
        splits = load_labelled(name)
        texts = splits["train"][0] + splits["valid"][0]
        labels = splits["train"][1] + splits["valid"][1]
        start = time.perf_counter()
        model = tfidf_logreg().fit(texts, labels)
        accuracy = float((model.predict(splits["test"][0]) == splits["test"][1]).mean())
        results[name] = {"test_accuracy": round(accuracy, 4), "n_train": len(texts), "n_test": len(splits["test"][0]),
                         "seconds": round(time.perf_counter() - start, 1)}
        print(f"{name:<12} test accuracy {accuracy:.4f}  ({len(texts)} train, {len(splits['test'][0])} test, "
              f"{results[name]['seconds']} s)", flush=True)
    print(json.dumps({"baseline": "tfidf word(1-2)+char(2-5) + logistic regression", "results": results}))


if __name__ == "__main__":
    main()
