"""`ulmfit fit`: labelled texts and a time budget in, the best classifier that budget buys out (issue 27).

    fit(DataSpec(train=["reviews.csv"]), "runs/my-fit", minutes=15)       # = ulmfit fit --train reviews.csv ...

1. Read the splits (a seeded 10% of train is the validation split when none is given) and any unlabelled text.
2. Measure: the texts' length in the pretrained LM's tokens, and this machine's speed for one LM fine-tuning step
   and one classifier step (a few seconds, counted in the budget).
3. Plan both stages from those (recipe.py), then run them under one wall-clock budget:
   LM fine-tuning (§3.2) on the training, validation and unlabelled texts (never the test texts), early-stopped
   on its held-out documents; the classifier (§3.3, gradual unfreezing) on what is left of the budget, early-stopped
   on the validation split. Each keeps its best epoch's weights.
4. The classify run dir's report compares ULMFiT with TF-IDF + LR on the same splits and records the delivered
   model, chosen on validation (run_report.py).

One run dir comes out: the classifier (what `predict`, `evaluate`, `explain`, `serve` and `export` take), its
fine-tuned LM in `lm/`, report.md, and fit.json (the plan, the measurements and the minutes each stage took).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint as ckpt
from .config import apply_overrides, preset
from .data import readers
from .data.dataspec import DataSpec, labelled_splits
from .errors import UlmfitError
from .model.awd_lstm import LanguageModel
from .model.classifier import TextClassifier
from .pipeline import classify, finetune, inherit_architecture, label_vocabulary
from .pretrained.model_zoo import resolve_pretrained
from .run_report import REPORT_FILE
from .runtime import setup_runtime
from .train import recipe

DEFAULT_PRETRAINED = {False: "ulmfit-wiki-fwd", True: "ulmfit-wiki-bwd"}      # by --backwards
DEFAULT_MINUTES = 15.0
FIT_FILE = "fit.json"
LM_DIR = "lm"


def fit(data: DataSpec, out_dir, pretrained=None, minutes: float = DEFAULT_MINUTES, unlabelled=(), seed: int = 0,
        force: bool = False, backwards: bool = False, precision: str = "fp32", threads: int = 0) -> dict:
    """Fine-tune the LM and train the classifier on `data` within `minutes` of wall time; see the module doc."""
    started = time.perf_counter()
    minutes = _check_minutes(minutes)
    deadline = started + minutes * 60
    out_dir = Path(out_dir)
    _check_out(out_dir, force)
    pretrained_dir = resolve_pretrained(pretrained or DEFAULT_PRETRAINED[backwards])
    _meta, lm_config, _state, tokenizer = ckpt.load_run(pretrained_dir, stages=("pretrain", "finetune"))
    if lm_config.train.backwards != backwards:
        raise UlmfitError(f"{pretrained_dir} reads {'backward' if lm_config.train.backwards else 'forward'}; "
                          f"{'drop' if not backwards else 'add'} --backwards or pick another --pretrained")
    splits = labelled_splits(data, seed, 0.1)
    labels = _check_labels(splits)
    extra = [t for path in unlabelled for t in _read_unlabelled(path)]
    if data.dataset:                      # a registry set's own unlabelled text (IMDb's 50k reviews: §3.2)
        from .data import download
        extra += list(download.DATASETS[data.dataset].reader(download.fetch(data.dataset)).get("unsup", ([],))[0])
    rt = setup_runtime(precision, threads)
    lm_texts = splits["train"][0] + splits["valid"][0] + extra
    stats = _stats(tokenizer, splits["train"][0], lm_texts, len(labels))
    probe = apply_overrides(preset("small", "classify"), [f"backwards={str(backwards).lower()}"])
    probe = inherit_architecture(probe, lm_config)
    speeds = measure_speeds(probe.model, len(labels), stats, rt)
    left = deadline - time.perf_counter()
    n_valid, n_test = len(splits["valid"][0]), len(splits.get("test", ((),))[0])
    need = recipe.min_seconds(stats, speeds, n_valid, n_test)
    _check_budget(minutes, left, need, speeds)
    plan = recipe.plan(stats, speeds, left, n_valid, n_test)
    print("[fit] " + "\n[fit] ".join(plan.why), flush=True)
    common = [f"seed={seed}", f"backwards={str(backwards).lower()}", f"precision={precision}",
              f"threads={threads}"]
    ft_cfg = apply_overrides(preset("small", "finetune"), plan.finetune + common)
    t0 = time.perf_counter()
    lm_result = finetune(ft_cfg, pretrained_dir, DataSpec.from_texts(lm_texts), out_dir / LM_DIR, force=True, rt=rt)
    lm_seconds = time.perf_counter() - t0
    left = deadline - time.perf_counter()
    reserve = recipe.reserve_seconds(stats, speeds, n_valid, plan.read_tokens, n_test)
    cls_seconds = left * (1 - recipe.RESERVE_FRACTION) - reserve
    if cls_seconds < 0.5 * plan.cls_minutes * 60:       # the LM stage overran its share: say so, then go on
        print(f"[fit] {max(cls_seconds, 0):.0f} s are left for the classifier, of the {plan.cls_minutes * 60:.0f} "
              "planned", flush=True)
    cls_minutes = max(cls_seconds, 6.0) / 60
    cls_cfg = apply_overrides(preset("small", "classify"), plan.classify + common + [f"max_minutes={cls_minutes:.3f}"])
    t0 = time.perf_counter()
    spec = DataSpec.from_texts(splits["train"], splits["valid"], splits.get("test"))
    result = classify(cls_cfg, out_dir / LM_DIR, spec, out_dir, force=True, rt=rt)
    summary = {"minutes_budget": minutes, "minutes_total": round((time.perf_counter() - started) / 60, 2),
               "lm_minutes": round(lm_seconds / 60, 2), "classifier_minutes": round((time.perf_counter() - t0) / 60, 2),
               "pretrained": str(pretrained or DEFAULT_PRETRAINED[backwards]), "plan": plan.__dict__,
               "stats": stats.__dict__, "speeds": speeds.__dict__, "n_unlabelled": len(extra),
               "lm": {k: v for k, v in lm_result.items() if not isinstance(v, (list, dict))}}
    ckpt.write_json(out_dir / FIT_FILE, summary)
    _append_to_report(out_dir, summary, result)
    result.update({k: summary[k] for k in ("minutes_budget", "minutes_total", "lm_minutes", "classifier_minutes")})
    result["lm_valid_ppl"] = lm_result.get("valid_ppl")
    return result


def _append_to_report(out_dir: Path, summary: dict, result: dict) -> None:
    """report.md ends with how the budget was spent and why: the plan's decisions and each stage's minutes."""
    path = out_dir / REPORT_FILE
    if not path.is_file():                     # the report could not be written (classify warned): nothing to add
        return
    lm = summary["lm"]
    lines = ["", "## How `ulmfit fit` spent its budget", "",
             f"{summary['minutes_total']:.2f} of {summary['minutes_budget']:g} minutes, from "
             f"`{Path(summary['pretrained']).name}`: LM fine-tuning {summary['lm_minutes']:.2f} min "
             f"({lm.get('epochs_run', '?')} epochs; validation perplexity {lm.get('before_valid_ppl', float('nan')):.1f}"
             f" before, {lm.get('valid_ppl', float('nan')):.1f} after), the classifier "
             f"{summary['classifier_minutes']:.2f} min ({result.get('epochs_run', '?')} epochs), then the baseline "
             "and this report. The plan:", ""]
    lines += [f"- {why}" for why in summary["plan"]["why"]]
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


# ---- checks: each one line, before anything is written ------------------------------------------------------
def _check_minutes(minutes) -> float:
    try:
        value = float(minutes)
    except (TypeError, ValueError):
        raise UlmfitError(f"--minutes {minutes!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise UlmfitError(f"--minutes must be a positive number of minutes, got {minutes!r}")
    return value


def _check_budget(minutes: float, left: float, need: float, speeds: recipe.Speeds) -> None:
    if left < need:
        raise UlmfitError(f"--minutes {minutes:g} is too small for this data on this machine: one step of each "
                          f"stage, the validation passes and the report need about {math.ceil(need / 60 * 10) / 10:g} "
                          f"minutes (measured {speeds.lm_tokens_per_s:.0f} LM tokens/s)")


def _check_out(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UlmfitError(f"--out {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise UlmfitError(f"{out_dir} is not empty; pass --force to overwrite it, or choose another --out")


def _check_labels(splits: dict) -> list[str]:
    names = label_vocabulary(splits["train"][1])
    if len(names) < 2:
        raise UlmfitError(f"the training labels hold a single class ({names[0]!r}); a classifier needs two or more")
    for split in ("valid", "test"):
        if split in splits:
            unknown = sorted(set(splits[split][1]) - set(names))
            if unknown:
                raise UlmfitError(f"the {split} data has label(s) {unknown[:5]} that the training data lacks; "
                                  f"training labels: {names[:20]}")
    return names


def _read_unlabelled(path) -> list[str]:
    """Texts of an --unlabelled file: a CSV/TSV/JSONL's text column, else one document per non-empty line."""
    path = Path(path)
    if not path.is_file():
        raise UlmfitError(f"--unlabelled {path} does not exist")
    if any(s in (".csv", ".tsv", ".jsonl", ".ndjson") for s in path.suffixes):
        texts, _ = readers.read_labelled_file(path, ["text"], None)
    else:
        try:
            texts = readers.read_text_files([path], split="line")
        except UlmfitError as e:
            if "no text" not in str(e):
                raise
            texts = []
    texts = [t for t in texts if str(t).strip()]
    if not texts:
        raise UlmfitError(f"--unlabelled {path} holds no text")
    return list(texts)


# ---- measurements --------------------------------------------------------------------------------------------
def _stats(tokenizer, train_texts: list[str], lm_texts: list[str], n_classes: int) -> recipe.DataStats:
    """Token counts from the pretrained LM's tokenizer on a sample (at most 2,000 texts), scaled by characters."""
    rng = np.random.default_rng(0)
    sample = [train_texts[i] for i in rng.permutation(len(train_texts))[:2000]]
    tokens = sum(len(ids) for ids in tokenizer.encode_documents(sample))
    per_char = tokens / max(sum(len(t) for t in sample), 1)
    return recipe.DataStats(n_train=len(train_texts), n_classes=n_classes, mean_tokens=tokens / len(sample),
                            lm_tokens=int(per_char * sum(len(t) for t in lm_texts)))


def measure_speeds(model_config, n_classes: int, stats: recipe.DataStats, rt, steps: int = 2) -> recipe.Speeds:
    """Tokens per second of one training step of each stage at the planned sizes, after one warm-up step."""
    bptt = recipe.lm_bptt(stats)
    lm = LanguageModel(model_config).to(rt.device)
    x = torch.randint(4, model_config.vocab_size, (recipe.lm_batch_size(stats, bptt), bptt), device=rt.device)
    lm_rate = _rate(lm, lambda: F.cross_entropy(lm(x).logits.float().flatten(0, 1), x.flatten()), x.numel(), rt,
                    steps)
    length = int(min(max(stats.mean_tokens, 8), 1400))
    clf = TextClassifier(model_config, n_classes).to(rt.device)
    tokens = torch.randint(4, model_config.vocab_size, (recipe.cls_batch_size(stats.n_train), length), device=rt.device)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    y = torch.zeros(tokens.shape[0], dtype=torch.long, device=rt.device)
    clf_rate = _rate(clf, lambda: F.cross_entropy(clf(tokens, mask), y), tokens.numel(), rt, steps)
    return recipe.Speeds(lm_tokens_per_s=lm_rate, cls_tokens_per_s=clf_rate)


def _rate(model, loss_fn, n_tokens: int, rt, steps: int) -> float:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for k in range(steps + 1):
        if k == 1:
            start = time.perf_counter()
        with rt.autocast():
            loss = loss_fn()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return n_tokens * steps / max(time.perf_counter() - start, 1e-9)
