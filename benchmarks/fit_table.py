"""`ulmfit fit` against TF-IDF + LR on the development sets, at a given number of labelled rows (issue 27).

A user with N labelled rows gives them all to `fit`, which holds out its own 10% for validation; so each row of the
table draws N rows (stratified, seed 0) from the set's train + valid texts, runs `fit` on them under the budget,
and reads ULMFiT's and TF-IDF + LR's validation accuracy (on the same held-out 10%) from the run. The test split
is scored only with --score-test, once, and every such look is appended to the results file with its date, so
the number of looks is on record. Rules are chosen on the validation figures alone.

    python benchmarks/fit_table.py --datasets tweeteval_irony subj --rows 2000 --minutes 5 --out runs/fit-table

`--recipe fixed` runs the fixed recipe beside it instead (the issue's "fixed finetune + classify" column): the
`small` preset's epochs (LM fine-tuning 4, classifier 5: the paper's IMDb counts) on the split `fit` would make,
from the same LM, under the same wall-clock budget (see run_fixed).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from ulmfit.data import download as datasets
from ulmfit.config import apply_overrides, preset
from ulmfit.data.dataspec import DataSpec, labelled_splits
from ulmfit.fit import DEFAULT_PRETRAINED, LM_DIR, fit
from ulmfit.pipeline import classify, finetune
from ulmfit.pretrained.model_zoo import resolve_pretrained
from ulmfit.runtime import cpu_flags, cpu_name


def stratified(texts: list, labels: list, rows: int, seed: int = 0) -> tuple[list, list]:
    """`rows` of the (text, label) pairs, each label in its share, drawn with `seed`; all of them when rows is 0."""
    if not rows or rows >= len(texts):
        return list(texts), list(labels)
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    keep = []
    for label in sorted(set(labels)):
        idx = np.flatnonzero(y == label)
        keep += rng.permutation(idx)[:max(1, round(rows * len(idx) / len(y)))].tolist()
    keep = sorted(keep)
    return [texts[i] for i in keep], [labels[i] for i in keep]


def draw(name: str, rows: int, test_rows: int = 0, seed: int = 0) -> tuple[tuple[list, list], tuple[list, list]]:
    """`rows` labelled rows (stratified) from train + valid, and `test_rows` of the test split (0: all of it)."""
    splits = datasets.load_labelled(name)
    train = stratified(splits["train"][0] + splits["valid"][0], splits["train"][1] + splits["valid"][1], rows, seed)
    return train, stratified(*splits["test"], test_rows, seed)


def run_fixed(spec: DataSpec, out: Path, pretrained, minutes: float) -> dict:
    """`finetune` then `classify` at the `small` preset's fixed epochs, on the split fit makes of `spec` (a seeded,
    stratified 10% for validation; LM fine-tuning on train + valid, as fit's), each stage's clock capped so that the
    two together stay within `minutes`: half for the LM at most, what is left (less a 15% reserve for the baseline,
    the test pass and the report) for the classifier. The result's keys are fit's."""
    splits = labelled_splits(spec, 0, 0.1)
    pretrained_dir = resolve_pretrained(pretrained or DEFAULT_PRETRAINED[False])
    start = time.perf_counter()
    lm_cfg = apply_overrides(preset("small", "finetune"), [f"max_minutes={minutes / 2:.3f}"])
    lm = finetune(lm_cfg, pretrained_dir, DataSpec.from_texts(splits["train"][0] + splits["valid"][0]), out / LM_DIR,
                  force=True)
    lm_minutes = (time.perf_counter() - start) / 60
    cls_minutes = max(0.85 * (minutes - lm_minutes), 0.1)
    cls_cfg = apply_overrides(preset("small", "classify"), [f"max_minutes={cls_minutes:.3f}"])
    t0 = time.perf_counter()
    result = classify(cls_cfg, out / LM_DIR, DataSpec.from_texts(splits["train"], splits["valid"], splits.get("test")),
                      out, force=True)
    return dict(result, lm_valid_ppl=lm.get("valid_ppl"), lm_minutes=round(lm_minutes, 2),
                classifier_minutes=round((time.perf_counter() - t0) / 60, 2))


def run(name: str, rows: int, minutes: float, out: Path, pretrained, score_test: bool, test_rows: int,
        recipe: str = "fit") -> dict:
    train, test = draw(name, rows, test_rows)
    spec = DataSpec.from_texts(train, None, test if score_test else None)
    start = time.perf_counter()
    if recipe == "fit":
        result = fit(spec, out, pretrained=pretrained, minutes=minutes, force=True)
    else:
        result = run_fixed(spec, out, pretrained, minutes)
    row = {"dataset": name, "rows": len(train[0]), "recipe": recipe, "minutes_budget": minutes,
           "minutes_wall": round((time.perf_counter() - start) / 60, 2),
           "valid_ulmfit": result.get("valid_accuracy"), "valid_tfidf": result.get("baseline_valid_accuracy"),
           "valid_mean": result.get("ensemble_valid_accuracy"), "delivered": result.get("delivered"),
           "lm_valid_ppl": result.get("lm_valid_ppl"), "epochs_run": result.get("epochs_run"),
           "lm_minutes": result.get("lm_minutes"), "classifier_minutes": result.get("classifier_minutes")}
    if score_test:
        row["test_rows"] = len(test[0])
        row.update({k: result.get(k) for k in ("test_accuracy", "baseline_test_accuracy", "ensemble_test_accuracy",
                                               "delivered_test_accuracy")})
    return row


def table(rows: list[dict]) -> str:
    """The results file's rows as a fixed-width table (validation, then test where scored), one line each."""
    def pct(v):
        return f"{100 * v:5.1f}" if isinstance(v, (int, float)) else "    -"
    lines = [f"{'dataset':20} {'rows':>5} | {'valid: ulmfit':>13} {'tfidf':>5} {'mean':>5} | {'test: ulmfit':>12} "
             f"{'tfidf':>5} {'mean':>5} {'deliv':>5} {'n':>5} | {'wall':>5} {'commit':7} delivered"]
    for r in rows:
        lines.append(f"{r['dataset']:20} {r['rows']:>5} | {pct(r['valid_ulmfit']):>13} {pct(r['valid_tfidf'])} "
                     f"{pct(r['valid_mean'])} | {pct(r.get('test_accuracy')):>12} {pct(r.get('baseline_test_accuracy'))} "
                     f"{pct(r.get('ensemble_test_accuracy'))} {pct(r.get('delivered_test_accuracy'))} "
                     f"{r.get('test_rows', '-'):>5} | {r['minutes_wall']:5.2f} {r['commit']:7} {r['delivered']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=[])
    parser.add_argument("--rows", type=int, nargs="+", default=[2000], help="0: every row")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/fit-table"))
    parser.add_argument("--score-test", action="store_true", help="score the test split (a look: it is logged)")
    # fit reserves time to score the test texts inside its budget, so IMDb's 25,000 would leave nothing to train
    parser.add_argument("--test-rows", type=int, default=2000, help="score a stratified sample of the test split "
                        "(seed 0) of at most N texts; 0: all")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/fit_table.jsonl"))
    parser.add_argument("--recipe", choices=["fit", "fixed"], default="fit", help="fit's recipe, or the fixed "
                        "finetune + classify one beside it (run_fixed)")
    parser.add_argument("--table", type=Path, metavar="JSONL", help="print a results file as a table, and stop")
    args = parser.parse_args()
    if args.table:
        print(table([json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]))
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    header = {"commit": commit, "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "cpu": cpu_name(),
              "flags": " ".join(cpu_flags()), "threads": torch.get_num_threads(), "pretrained": args.pretrained,
              "test_look": args.score_test}
    for name in args.datasets:
        for rows in args.rows:
            row = {**header, **run(name, rows, args.minutes, args.out / f"{name}-{rows}-{args.recipe}",
                                   args.pretrained, args.score_test, args.test_rows, args.recipe)}
            print(json.dumps(row), flush=True)
            with open(args.results, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
