"""Rules of `ulmfit fit`'s recipe compared on development data only (issue 27: choose on validation, never test).

fit_table.py's 15-minute rows showed short-text fits ending after 2-4 of their 15 minutes, both stages
early-stopped while their STLR was still near its top LR. Each variant here changes recipe.py's constants (or
adds --set overrides to the plan) and runs `fit` on the same stratified draw as fit_table.py. A validation split
of 200 texts is too noisy to rank variants (one text is half a point), so each run is also scored on a second
development sample: rows of the set's train + valid splits that the draw left out (never its test split).

    python benchmarks/recipe_variants.py --datasets rt_polarity subj --rows 2000 --variants current cls10
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from ulmfit.analysis.baseline import log_loss
from ulmfit.data import download as datasets
from ulmfit.data.dataspec import DataSpec
from ulmfit.fit import fit
from ulmfit.predict import classifier_proba, load_classifier
from ulmfit.runtime import cpu_flags, cpu_name
from ulmfit.train import recipe
from ulmfit.train.tasks import ClassifierTask

from fit_table import stratified

# name -> (recipe constants to set, --set overrides added to the LM stage, added to the classifier stage)
VARIANTS = {
    "current": ({}, [], []),
    # the all-groups STLR cycle 6 epochs long instead of 16: its LR decays within what early stopping lets run
    "cls10": ({"CLS_MAX_EPOCHS_SMALL": 10}, [], []),
    "cls10_lm5": ({"CLS_MAX_EPOCHS_SMALL": 10, "LM_MAX_EPOCHS": 5}, [], []),
    "cls8_lm4": ({"CLS_MAX_EPOCHS_SMALL": 8, "LM_MAX_EPOCHS": 4}, [], []),
    "cls_lr5e-3": ({}, [], ["lr=5e-3"]),
    "lm_patience2": ({"LM_PATIENCE": 2}, [], []),
    # the paper's dropout in the classifier (fit uses half): Rotten Tomatoes' classifier overfit after 5-8 epochs
    "cls_drop1": ({}, [], ["model.dropout_scale=1.0"]),
    # the classifier stopped on validation log-loss, not accuracy: RT's 18-epoch run kept accuracy flat while its
    # log-loss on fresh development texts grew to 1.32 (overconfident); see MONITORS
    "cls_stop_loss": ({}, [], []),
}
# variants that change how the classifier's early stopping scores an epoch (tasks.ClassifierTask.monitor)
MONITORS = {"cls_stop_loss": staticmethod(lambda m: (m["valid_loss"], -m["valid_accuracy"]))}


def patched_plan(constants: dict, lm_extra: list, cls_extra: list):
    original = recipe._plan

    def plan(*args, **kwargs):
        p = original(*args, **kwargs)
        return recipe.Plan(p.finetune + lm_extra, p.classify + cls_extra, p.lm_minutes, p.cls_minutes,
                           p.lm_epochs, p.cls_epochs, p.why, p.read_tokens)
    return plan, original


def development_split(name: str, rows: int, extra_rows: int) -> tuple[tuple, tuple]:
    """The draw fit_table.py makes (train + valid, stratified, seed 0) and up to `extra_rows` of the rows it left."""
    splits = datasets.load_labelled(name)
    texts = splits["train"][0] + splits["valid"][0]
    labels = splits["train"][1] + splits["valid"][1]
    drawn = stratified(texts, labels, rows)
    taken = set(drawn[0])
    rest = [(t, y) for t, y in zip(texts, labels) if t not in taken]
    rest_t, rest_y = stratified([t for t, _ in rest], [y for _, y in rest], extra_rows, seed=1)
    return drawn, (rest_t, rest_y)


def score(out: Path, texts: list, labels: list, baseline: bool) -> dict:
    model = load_classifier(out, baseline=baseline)
    probs = classifier_proba(model, texts)
    y = np.array([model.label_names.index(label) for label in labels])
    return {"accuracy": float((probs.argmax(1) == y).mean()), "log_loss": log_loss(probs, y)}


def run(name: str, rows: int, variant: str, minutes: float, out: Path, extra_rows: int) -> dict:
    constants, lm_extra, cls_extra = VARIANTS[variant]
    saved = {k: getattr(recipe, k) for k in constants}
    plan, original = patched_plan(constants, lm_extra, cls_extra)
    for k, v in constants.items():
        setattr(recipe, k, v)
    recipe._plan = plan
    monitor = ClassifierTask.__dict__["monitor"]
    if variant in MONITORS:
        ClassifierTask.monitor = MONITORS[variant]
    try:
        train, extra = development_split(name, rows, extra_rows)
        start = time.perf_counter()
        result = fit(DataSpec.from_texts(train), out, minutes=minutes, force=True)
        wall = (time.perf_counter() - start) / 60
    finally:
        recipe._plan = original
        ClassifierTask.monitor = monitor
        for k, v in saved.items():
            setattr(recipe, k, v)
    ulmfit, delivered = score(out, *extra, baseline=False), score(out, *extra, baseline=True)
    fit_json = json.loads((out / "fit.json").read_text())
    return {"dataset": name, "rows": len(train[0]), "variant": variant, "minutes_budget": minutes,
            "minutes_wall": round(wall, 2), "lm_minutes": fit_json["lm_minutes"],
            "classifier_minutes": fit_json["classifier_minutes"], "lm_epochs_run": fit_json["lm"].get("epochs_run"),
            "lm_valid_ppl": result.get("lm_valid_ppl"), "cls_epochs_run": result.get("epochs_run"),
            "valid_ulmfit": result.get("valid_accuracy"), "valid_tfidf": result.get("baseline_valid_accuracy"),
            "delivered": result.get("delivered"), "dev_rows": len(extra[0]),
            "dev_ulmfit": ulmfit["accuracy"], "dev_ulmfit_logloss": ulmfit["log_loss"],
            "dev_delivered": delivered["accuracy"], "dev_delivered_logloss": delivered["log_loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--rows", type=int, nargs="+", default=[2000])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--extra-rows", type=int, default=2000, help="development rows scored beside validation")
    parser.add_argument("--out", type=Path, default=Path("runs/recipe-variants"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/recipe_variants.jsonl"))
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    header = {"commit": commit, "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "cpu": cpu_name(),
              "flags": " ".join(cpu_flags()), "threads": torch.get_num_threads()}
    for name in args.datasets:
        for rows in args.rows:
            for variant in args.variants:
                row = {**header, **run(name, rows, variant, args.minutes, args.out / f"{name}-{rows}-{variant}",
                                       args.extra_rows)}
                print(json.dumps(row), flush=True)
                with open(args.results, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
