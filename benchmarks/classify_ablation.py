"""ULMFiT's ablation in miniature (paper §5): classifier fine-tuning strategies on one dataset and one split.

    python benchmarks/classify_ablation.py --finetuned runs/ft --dataset clickbait --out runs/ablation \
        [--strategies gradual full frozen no-pretraining] [--backward runs/cls-bwd] [--set max_minutes=4 ...]

Every variant starts from the same fine-tuned LM (`--no-pretraining`: from random weights) and is scored on the
same test split. With `--backward DIR` (a classifier trained on the backward stream) the forward + backward
ensemble is scored too. Prints a table; the last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ulmfit.config import apply_overrides, preset
from ulmfit.predict import ensemble_proba
from ulmfit.pipeline import DataSpec, classify, labelled_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finetuned", type=Path, required=True)
    parser.add_argument("--dataset", default="clickbait")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--strategies", nargs="+", default=["gradual", "full", "frozen", "no-pretraining"])
    parser.add_argument("--backward", type=Path, help="a backward classifier dir, for the ensemble row")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    rows = {}
    for name in args.strategies:
        overrides = list(args.overrides)
        overrides += ["no_pretraining=true", "strategy=full"] if name == "no-pretraining" else [f"strategy={name}"]
        config = apply_overrides(preset(args.preset, "classify"), overrides)
        start = time.perf_counter()
        result = classify(config, args.finetuned, DataSpec(dataset=args.dataset), args.out / name, force=True)
        rows[name] = {"test_accuracy": result["test_accuracy"], "test_macro_f1": result["test_macro_f1"],
                      "minutes": round((time.perf_counter() - start) / 60, 2)}
    if args.backward and "gradual" in rows:
        texts, labels = labelled_splits(DataSpec(dataset=args.dataset), seed=0, valid_frac=0.1)["test"]
        probs, names = ensemble_proba([args.out / "gradual", args.backward], texts)
        accuracy = float((probs.argmax(1) == [names.index(y) for y in labels]).mean())
        rows["ensemble fwd+bwd"] = {"test_accuracy": accuracy}
    print(f"{'variant':<18} {'test acc':>9} {'macro-F1':>9} {'minutes':>8}")
    for name, row in rows.items():
        f1 = row.get("test_macro_f1")
        print(f"{name:<18} {row['test_accuracy']:>9.4f} {'-' if f1 is None else f'{f1:.4f}':>9} "
              f"{row.get('minutes', ''):>8}")
    print(json.dumps({"dataset": args.dataset, "finetuned": str(args.finetuned), "rows": rows}))


if __name__ == "__main__":
    main()
