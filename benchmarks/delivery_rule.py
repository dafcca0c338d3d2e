"""Which rule should pick a run dir's delivered model (ULMFiT, TF-IDF + LR, or a mix) from a SMALL validation split?
(issue 27: with 50 or 200 validation texts, accuracy chose a mix that was behind TF-IDF + LR on some test sets.)

Validation data only. Each `fit` run dir here was validated on ~800-950 texts (benchmarks/lm_size_vocab.py gives
fit a large validation split), so a small validation split can be simulated: draw `n` of those texts (stratified,
as fit's own split is), let each rule choose ULMFiT's weight on them, and score that choice on the OTHER validation
texts. Repeated `--draws` times per run dir and size. The test splits are never read.

What each rule sees is a small sample; what it is judged by is the rest of the validation split, which stands for
the user's future texts. Caveats, the same for every rule: the classifier's epoch and TF-IDF's C were chosen on the
whole validation split, and the draws of one run dir overlap.

    python benchmarks/delivery_rule.py runs/size-vocab/fit/*/ --sizes 50 200
    python benchmarks/delivery_rule.py --fit clickbait tweeteval_offensive --out runs/delivery   # more run dirs
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ulmfit.analysis import baseline as bl
from ulmfit.data import download as datasets
from ulmfit.files import read_json
from ulmfit.predict import classifier_proba, load_classifier

from fit_table import stratified  # noqa: E402  (benchmarks/ is the script's folder)
from lm_size_vocab import fit_variant  # noqa: E402

WEIGHTS = np.array(bl.ULMFIT_WEIGHTS)          # 1.0, 0.75, 0.5, 0.25, 0.0


def _acc(p, y):
    return (p.argmax(1) == y).mean(axis=-1)


def _logloss(p, y):
    return -np.log(np.clip(np.take_along_axis(p, y[..., None], -1)[..., 0], 1e-7, 1)).mean(axis=-1)


def rule_accuracy(pu, pb, y):
    """Today's rule (ensemble_offer): the best validation accuracy; ties go to more ULMFiT."""
    scores = [_acc(w * pu + (1 - w) * pb, y) for w in WEIGHTS]
    return WEIGHTS[int(np.argmax(scores))]              # WEIGHTS runs from 1.0 down: argmax keeps the first tie


def rule_logloss(pu, pb, y):
    """The lowest validation log-loss: a proper score, so every text counts, not only those near the boundary."""
    return WEIGHTS[int(np.argmin([_logloss(w * pu + (1 - w) * pb, y) for w in WEIGHTS]))]


def rule_accuracy_then_logloss(pu, pb, y):
    """The best validation accuracy; ties broken by log-loss (not by preferring ULMFiT)."""
    scores = [(_acc(w * pu + (1 - w) * pb, y), -_logloss(w * pu + (1 - w) * pb, y)) for w in WEIGHTS]
    return WEIGHTS[max(range(len(WEIGHTS)), key=lambda i: scores[i])]


RULES = {"accuracy (today)": rule_accuracy, "log-loss": rule_logloss,
         "accuracy, ties by log-loss": rule_accuracy_then_logloss,
         "always the mean": lambda pu, pb, y: 0.5, "always ULMFiT": lambda pu, pb, y: 1.0,
         "always TF-IDF": lambda pu, pb, y: 0.0}


def validation_probs(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ULMFiT's and the saved baseline's probabilities on the run's validation texts, and their labels. The texts
    are rebuilt as lm_size_vocab.py drew them (row.json names the set and the sizes)."""
    row = read_json(run_dir / "row.json")
    splits = datasets.load_labelled(row["dataset"])
    texts, labels = stratified(*splits["valid"], row["valid_rows"])
    model = load_classifier(run_dir, device="cpu", baseline=False)
    index = {name: i for i, name in enumerate(model.label_names)}
    y = np.array([index[str(lab)] for lab in labels])
    return classifier_proba(model, texts), bl.TfidfLR.load(run_dir / bl.BASELINE_DIR).predict_proba(texts), y


def simulate(pu, pb, y, n: int, draws: int, seed: int = 0) -> dict:
    """Per rule: mean held-out accuracy of its choice, and how often that choice is behind TF-IDF + LR alone and
    behind ULMFiT alone on the held-out texts (by more than one text's worth)."""
    rng = np.random.default_rng(seed)
    out = {name: {"acc": [], "behind_tfidf": [], "behind_ulmfit": []} for name in RULES}
    for _ in range(draws):
        pick = []
        for label in np.unique(y):                     # stratified, as fit's own validation split is
            idx = np.flatnonzero(y == label)
            pick += rng.permutation(idx)[:max(1, round(n * len(idx) / len(y)))].tolist()
        sel = np.zeros(len(y), bool)
        sel[pick] = True
        rest = ~sel
        tfidf, ulmfit = _acc(pb[rest], y[rest]), _acc(pu[rest], y[rest])
        slack = 1 / rest.sum()
        for name, rule in RULES.items():
            w = rule(pu[sel], pb[sel], y[sel])
            a = _acc(w * pu[rest] + (1 - w) * pb[rest], y[rest])
            out[name]["acc"].append(a)
            out[name]["behind_tfidf"].append(a < tfidf - slack)
            out[name]["behind_ulmfit"].append(a < ulmfit - slack)
    return {name: {k: float(np.mean(v)) for k, v in d.items()} for name, d in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="fit run dirs holding row.json (lm_size_vocab.py)")
    parser.add_argument("--fit", nargs="+", default=[], metavar="DATASET", help="first run `fit` from the shipped LM "
                        "on 1,000 training and up to 1,000 validation rows of each (3 minutes), into --out")
    parser.add_argument("--out", type=Path, default=Path("runs/delivery"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/delivery_rule.jsonl"))
    args = parser.parse_args()
    for dataset in args.fit:
        fit_variant("shipped", dataset, args.out, 1000, 1000, 3.0, pretrained="ulmfit-wiki-fwd")
        args.runs.append(args.out / "fit" / f"shipped-{dataset}")
    rows = []
    for run in args.runs:
        pu, pb, y = validation_probs(run)
        for n in args.sizes:
            res = simulate(pu, pb, y, n, args.draws)
            rows.append({"run": run.name, "n_select": n, "n_valid": len(y), "valid_ulmfit": float(_acc(pu, y)),
                         "valid_tfidf": float(_acc(pb, y)), "rules": res,
                         "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())})
            print(f"{run.name:34} n={n:<4} ulmfit {100 * _acc(pu, y):5.1f} tfidf {100 * _acc(pb, y):5.1f} | "
                  + "  ".join(f"{k[:12]} {100 * v['acc']:5.1f}" for k, v in res.items()), flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    for n in args.sizes:
        mine = [r for r in rows if r["n_select"] == n]
        print(f"\nchosen on {n} validation texts, judged on the rest ({len(mine)} run dirs, {args.draws} draws each):")
        print(f"  {'rule':28} {'held-out acc':>12} {'behind TF-IDF':>14} {'behind ULMFiT':>14}")
        for name in RULES:
            acc = np.mean([r["rules"][name]["acc"] for r in mine])
            bt = np.mean([r["rules"][name]["behind_tfidf"] for r in mine])
            bu = np.mean([r["rules"][name]["behind_ulmfit"] for r in mine])
            print(f"  {name:28} {100 * acc:11.2f}% {100 * bt:13.1f}% {100 * bu:13.1f}%")


if __name__ == "__main__":
    main()
