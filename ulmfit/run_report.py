"""Top layer: the report of one classify run: report.md in the run dir, written by `pipeline.classify` when
training is done.

    valid (+ test) probabilities --metrics.py--> accuracy, macro-F1, per-class table, confusion matrix (table + PNG)
    metrics.jsonl --report.py's plots--> loss_curves.png, lr_schedule.png
    the k most confident mistakes --explain.attributions--> each word with its integrated-gradients score
    the train split --baseline.py--> TF-IDF + LR scored on the same splits, and the ensemble offer (valid only)

A finished training run must not fail because of its report: each part that can fail (matplotlib or scikit-learn
not installed, a baseline that cannot be fitted) leaves one line saying what is missing, and the rest is written.
The ensemble decision is recorded in config.json, where `TextClassifier.from_pretrained` (and so `ulmfit predict`
and `ulmfit evaluate`) reads it.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from .analysis import baseline as bl
from .checkpoint import CONFIG_FILE, read_json, write_json
from .errors import UlmfitError
from .predict import TextClassifier
from .files import atomic_write_bytes
from .analysis.explain import attributions, plot_attributions, plot_confusion
from .analysis.metrics import classification_report, top_losses
from .analysis.plots import plot_losses, plot_lr_schedule

REPORT_FILE = "report.md"
ENSEMBLE_NAME = "mean of the two"
DELIVERED_NAME = "delivered (chosen on valid)"


def write_run_report(run_dir: Path, splits: dict, probs: dict, device=None, k: int = 5, steps: int = 32,
                     max_tokens: int = 400) -> dict:
    """Write report.md (+ PNGs, + the baseline in baseline/) into a finished classify run dir and record the
    ensemble decision in its config.json. `splits`: name -> (texts, labels as str), train and valid at least;
    `probs`: ulmfit's (N, C) probabilities for valid (and test). Returns the scalars to add to the run's results.
    Should the report itself fail, the run stays as saved (no ensemble) and a warning says why."""
    try:
        return _write(Path(run_dir), splits, probs, device, k, steps, max_tokens)
    except Exception as e:  # noqa: BLE001 (the trained run is saved; its report is not worth failing it for)
        warnings.warn(f"{run_dir} is saved, but its {REPORT_FILE} could not be written ({type(e).__name__}: {e})",
                      stacklevel=2)
        return {}


def _write(run_dir: Path, splits: dict, probs: dict, device, k: int, steps: int, max_tokens: int) -> dict:
    meta = read_json(run_dir / CONFIG_FILE)
    labels = meta["labels"]
    index = {name: i for i, name in enumerate(labels)}
    ys = {name: np.array([index[str(y)] for y in splits[name][1]], dtype=np.int64)
          for name in ("valid", "test") if name in probs}
    base_probs, base_note = _baseline(run_dir, splits, ys, labels)
    offer = None if base_probs is None else bl.ensemble_offer(ys["valid"], probs["valid"], base_probs["valid"])
    scores = compare_with_baseline(ys, probs, base_probs, offer["ulmfit_weight"] if offer else 1.0)
    scores.pop("offer")
    lines = [f"# classify run `{run_dir.name}`", "",
             f"Labels: {', '.join(f'`{n}`' for n in labels)}. Texts: "
             + ", ".join(f"{len(splits[s][0])} {s}" for s in ("train", "valid", "test") if s in splits)
             + f". Encoder from the {meta.get('encoder_from', '?')} run `{_shown_path(meta.get('lm_dir'), run_dir)}`.",
             ""]
    if offer and offer["baseline_ensemble"]:           # the report leads with what the run dir answers with
        lines += [f"**This run dir predicts with {offer['delivered']}**: it had the lowest validation log-loss "
                  f"(accuracy {offer['delivered_valid_accuracy']:.4f}, against ULMFiT alone's "
                  f"{offer['baseline_valid_accuracy']['ulmfit']:.4f}). `--no-baseline` uses ULMFiT alone.", ""]
    lines += _scores_section(scores, base_probs, base_note, offer)
    for split in ("valid", "test"):
        if split in probs:
            lines += _split_section(run_dir, split, ys[split], probs[split], labels)
    lines += ["## Training curves", ""]
    lines += _picture(run_dir / "loss_curves.png", "loss curves", lambda p: plot_losses({"classify": run_dir}, p))
    lines += _picture(run_dir / "lr_schedule.png", "LR schedule", lambda p: plot_lr_schedule({"classify": run_dir}, p))
    split = "test" if "test" in probs else "valid"
    lines += _mistakes_section(run_dir, split, splits[split][0], ys[split], probs[split], labels, device, k, steps,
                               max_tokens)
    path = run_dir / REPORT_FILE
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    summary = {"report": str(path), "baseline_ensemble": bool(offer and offer["baseline_ensemble"]),
               "delivered": offer["delivered"] if offer else bl.delivered_name(1.0),
               "ulmfit_weight": offer["ulmfit_weight"] if offer else 1.0}
    for split, row in scores.items():
        if bl.NAME in row:
            summary[f"baseline_{split}_accuracy"] = row[bl.NAME]["accuracy"]
            summary[f"ensemble_{split}_accuracy"] = row[ENSEMBLE_NAME]["accuracy"]
            summary[f"delivered_{split}_accuracy"] = row[DELIVERED_NAME]["accuracy"]
    meta.update(offer or {"baseline_ensemble": False})     # last: a decision is only recorded beside its report
    meta.setdefault("results", {}).update(summary)
    write_json(run_dir / CONFIG_FILE, meta)
    return summary


def _shown_path(path, run_dir: Path) -> str:
    """A path inside the run dir relative to it (`lm` for `ulmfit fit`'s own LM), so a copied report stays true."""
    if not path:
        return "?"
    try:
        return Path(path).resolve().relative_to(Path(run_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


def compare_with_baseline(ys: dict, probs: dict, base_probs: dict | None, weight: float = 1.0) -> dict:
    """split -> model name -> {accuracy, macro_f1, n} (ULMFiT, the baseline, their mean and the delivered mix with
    ULMFiT's `weight`), and "offer": the delivery decision, taken on valid only (None without a baseline). The test
    split is scored for the report, never consulted."""
    out = {}
    for split, y in ys.items():
        models = {"ulmfit": probs[split]}
        if base_probs is not None:
            models[bl.NAME] = base_probs[split]
            models[ENSEMBLE_NAME] = (probs[split] + base_probs[split]) / 2
            models[DELIVERED_NAME] = bl.mix(probs[split], base_probs[split], weight)
        out[split] = {name: _scores(y, p, probs[split].shape[1]) for name, p in models.items()}
    out["offer"] = None if base_probs is None else bl.ensemble_offer(ys["valid"], probs["valid"], base_probs["valid"])
    return out


def _scores(y, p, n_classes: int) -> dict:
    report = classification_report(y.tolist(), np.asarray(p).argmax(1).tolist(), [str(c) for c in range(n_classes)])
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "n": report["n"]}


def _baseline(run_dir: Path, splits: dict, ys: dict, labels: list[str]) -> tuple[dict | None, str]:
    """Fit, save and reload the baseline; its probabilities (those `ulmfit predict` would average in) per split."""
    folder = run_dir / bl.BASELINE_DIR
    for name in (bl.META_FILE, bl.VOCAB_FILE, bl.WEIGHTS_FILE):    # --force over an older run: never mix the two
        (folder / name).unlink(missing_ok=True)
    index = {name: i for i, name in enumerate(labels)}
    train = (splits["train"][0], np.array([index[str(y)] for y in splits["train"][1]]))
    try:
        model, by_c = bl.fit_baseline(train, (splits["valid"][0], ys["valid"]), labels)
        model.save(folder, {"valid_accuracy_by_C": {str(c): a for c, a in by_c.items()}})
        model = bl.TfidfLR.load(folder)
    except UlmfitError as e:                         # scikit-learn missing: the install hint
        return None, str(e)
    except Exception as e:  # noqa: BLE001 (the run is trained and saved; a baseline failure only goes in the report)
        return None, f"the {bl.NAME} baseline could not be fitted ({type(e).__name__}: {e})"
    note = f"{bl.NAME}: C={model.C:g} chosen on valid among {', '.join(f'{c:g}' for c in by_c)}, fitted on train"
    return {split: model.predict_proba(splits[split][0]) for split in ys}, note


def _scores_section(scores: dict, base_probs, base_note: str, offer: dict | None) -> list[str]:
    lines = ["## Scores", "", "| split | model | accuracy | macro-F1 | n |", "|---|---|---|---|---|"]
    for split, models in scores.items():
        lines += [f"| {split} | {name} | {s['accuracy']:.4f} | {s['macro_f1']:.4f} | {s['n']} |"
                  for name, s in models.items()]
    lines += ["", base_note, ""]
    if base_probs is None:
        return lines
    split = "test" if "test" in scores else "valid"
    ours, theirs = scores[split]["ulmfit"]["accuracy"], scores[split][bl.NAME]["accuracy"]
    verdict = (f"yes, by {100 * (ours - theirs):.1f} points of accuracy" if ours > theirs else
               "no, the two are level" if ours == theirs else
               f"not here, ulmfit is {100 * (theirs - ours):.1f} points of accuracy behind")
    lines += [f"**Does the deep model pay off on your data?** On {split}: {verdict} (ulmfit {ours:.4f}, "
              f"{bl.NAME} {theirs:.4f}).", ""]
    losses = offer.get("valid_logloss_by_ulmfit_weight", {})
    tried = ", ".join(f"{bl.delivered_name(float(w))}: log-loss {losses[w]:.4f}, accuracy {a:.4f}" if w in losses
                      else f"{bl.delivered_name(float(w))} {a:.4f}"
                      for w, a in offer["valid_accuracy_by_ulmfit_weight"].items())
    lines += [f"**Delivered model:** {offer['delivered']}, the lowest validation log-loss among ({tried}); "
              "`ulmfit predict`, `evaluate`, `serve` and `export` on this run dir answer with it "
              "(`--no-baseline`: ULMFiT alone).", ""]
    return lines


def _split_section(run_dir: Path, split: str, y, p, labels: list[str]) -> list[str]:
    report = classification_report(y.tolist(), p.argmax(1).tolist(), labels)
    lines = [f"## ulmfit on {split}: accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}", "",
             "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {_md(c)} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |"
              for c, s in report["per_class"].items()]
    lines += ["", "Confusion matrix (rows: true, columns: predicted):", "",
              "| true \\ predicted | " + " | ".join(_md(c) for c in labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {_md(c)} | " + " | ".join(map(str, row)) + " |" for c, row in zip(labels, report["confusion_matrix"])]
    lines.append("")
    path = run_dir / f"confusion_{split}.png"
    return lines + _picture(path, f"confusion matrix ({split})",
                            lambda out: plot_confusion(report["confusion_matrix"], labels, out))


def _picture(path: Path, alt: str, draw) -> list[str]:
    """A markdown image after drawing it, or one line saying why it was not drawn."""
    try:
        draw(path)
    except ImportError:                  # report.py's plots; plot_confusion says the same as a UlmfitError
        return [f"({alt} not drawn: matplotlib is not installed; `pip install matplotlib` for the pictures)", ""]
    except UlmfitError as e:
        return [f"({alt} not drawn: {e})", ""]
    except Exception as e:  # noqa: BLE001 (a picture is not worth failing a finished run for)
        return [f"({alt} not drawn: {type(e).__name__}: {e})", ""]
    return [f"![{alt}]({path.name})", ""]


def _mistakes_section(run_dir: Path, split: str, texts, y, p, labels, device, k: int, steps: int,
                      max_tokens: int) -> list[str]:
    """The k most confident mistakes, each word with its integrated-gradients score for the predicted label."""
    mistakes = top_losses(p, y, texts, k, labels)
    lines = [f"## The {k} most confident mistakes ({split})", ""]
    if not mistakes:
        return lines + [f"No mistakes on {split}.", ""]
    lines += [f"Each word's integrated-gradients score ({steps} steps) for the predicted label, in logit units "
              f"(> 0 pushed towards it); texts over {max_tokens} tokens are shown without scores.", ""]
    try:
        model = TextClassifier.from_pretrained(run_dir, device=device, baseline=False)
    except Exception as e:  # noqa: BLE001
        model = None
        lines += [f"(attributions not computed: {type(e).__name__}: {e})", ""]
    explained = []
    for n, m in enumerate(mistakes, 1):
        lines.append(f"{n}. true **{_md(m['true'])}**, predicted **{_md(m['predicted'])}** "
                     f"(p={m['probability']:.3f}, loss {m['loss']:.2f}, {split} row {m['index']})")
        shown, expl = _attributed(model, m["text"], steps, max_tokens)
        lines += ["", "   > " + shown, ""]
        explained += [expl] if expl is not None else []
    if explained:                        # the same scores in colour: GitHub renders a picture, not coloured HTML
        lines += _picture(run_dir / f"attributions_{split}.png", f"attributions of the mistakes ({split})",
                          lambda p: plot_attributions(explained, p))
    return lines


def _attributed(model, text: str, steps: int, max_tokens: int) -> tuple[str, object]:
    """(`word(+1.2) word(-0.05) ...`, the Explanation), or (the text alone, cut to 300 characters, None) when no
    scores are computed."""
    plain = _md(" ".join(text.split())[:300])
    if model is None:
        return plain, None
    n_tokens = len(model.tokenizer.encode_document(text))
    if n_tokens > max_tokens:
        return f"{plain} … ({n_tokens} tokens: no scores above {max_tokens})", None
    try:
        expl = attributions(model, text, steps=steps)
    except Exception as e:  # noqa: BLE001
        return f"{plain} (attributions failed: {type(e).__name__}: {e})", None
    return " ".join(f"{_md(w)}({s:+.2g})" for w, s in expl.by_word()), expl


def _md(text) -> str:
    """Escape what markdown would read as markup (emphasis, tables, links, HTML)."""
    return re.sub(r"([\\`*_\[\]<>|#!~])", r"\\\1", str(text))
