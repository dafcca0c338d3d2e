# %% [markdown]
# **Shared runs.** The three stages are called through `ulmfit.pipeline` exactly as the CLI calls them. A stage
# whose run dir already holds a finished `model.pt` is not run again, so the WikiText-2 language model is pretrained
# once and reused by every notebook (tokenizing WikiText-2 alone takes about a minute).
# %%
import json

from ulmfit.config import apply_overrides, preset
from ulmfit.pipeline import DataSpec, classify, finetune, pretrain

# QUICK: optimiser-step caps. Full: the preset's epochs within wall-time budgets, so that each notebook stays near
# 20 minutes on 2 shared cores: 25 minutes for the shared WikiText-2 LM (2 of its 3 epochs fit on 2 free cores:
# 3,633 steps), 5 for LM fine-tuning and 3 per classifier (a notebook may set its own); the LR schedule follows the clock.
CAPS = ({"pretrain": ["max_steps=1000"], "finetune": ["max_steps=300"]} if QUICK else
        {"pretrain": ["max_minutes=25"], "finetune": ["max_minutes=5"], "classify": ["max_minutes=3"]})


def stage_config(stage, *overrides):
    """The preset's config for `stage`, with the mode's cap and `overrides` ("field=value") applied."""
    return apply_overrides(preset(PRESET, stage), CAPS.get(stage, []) + list(overrides))


def summarize(result):
    """A stage's result dict as a few readable lines: the numbers, rounded; lists and nested dicts by size."""
    lines = []
    for key, value in result.items():
        if isinstance(value, float):
            lines.append(f"  {key:<24} {value:.4g}")
        elif isinstance(value, (int, str, bool)) or value is None:
            lines.append(f"  {key:<24} {str(value)[:90]}")
        elif isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values()):
            lines.append(f"  {key:<24} " + ", ".join(f"{k} {v:.4g}" for k, v in list(value.items())[:6]))
        else:
            lines.append(f"  {key:<24} ({type(value).__name__} of {len(value)})" if hasattr(value, "__len__")
                         else f"  {key:<24} {str(value)[:90]}")
    return "\n".join(lines)


def run_once(out_dir, stage_fn, *args, **kwargs):
    """Run one pipeline stage into `out_dir` unless a finished run is already there; return the run dir."""
    out_dir = Path(out_dir)
    if (out_dir / "model.pt").is_file():
        print(f"reusing the finished run in {out_dir}")
    else:
        (out_dir / "metrics.jsonl").unlink(missing_ok=True)     # a half-finished earlier attempt left records
        print(f"{stage_fn.__name__} -> {out_dir}")
        print(summarize(stage_fn(*args, out_dir=out_dir, force=True, **kwargs)))
    return out_dir


def pretrained_lm(backwards=False):
    """Stage 1 (ULMFiT §3.1): the shared WikiText-2 LM; the backward one reuses the forward LM's tokenizer."""
    forward = run_once(RUNS / "pretrain-wikitext2", pretrain, stage_config("pretrain"), DataSpec(dataset="wikitext2"))
    if not backwards:
        return forward
    return run_once(RUNS / "pretrain-wikitext2-bwd", pretrain, stage_config("pretrain", "backwards=true"),
                    DataSpec(dataset="wikitext2"), tokenizer_dir=forward)


def finetuned_lm(dataset, backwards=False, *overrides, data=None):
    """Stage 2 (ULMFiT §3.2): the pretrained LM fine-tuned on the texts of `dataset` (or of `data`, so named)."""
    suffix = "-bwd" if backwards else ""
    return run_once(RUNS / f"finetune-{dataset}{suffix}", finetune,
                    stage_config("finetune", f"backwards={str(backwards).lower()}", *overrides),
                    pretrained_lm(backwards), data or DataSpec(dataset=dataset))


def read_metrics(run_dir):
    """The records a run appended to metrics.jsonl (train every 50 steps, one per epoch)."""
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]


def labelled_subset(dataset, n_train, n_valid=None, n_test=None, subset=None):
    """The dataset's standard splits, or (`subset`, default QUICK) a seeded slice of them written as CSV files.

    With fewer training examples one epoch is short, so gradual unfreezing still gets one epoch per stage.
    """
    if not (QUICK if subset is None else subset):
        return DataSpec(dataset=dataset)
    import csv

    from ulmfit.data.download import load_labelled
    folder = RUNS / f"{dataset}-subset-{n_train}-{n_valid}-{n_test}"
    paths = {split: folder / f"{split}.csv" for split in ("train", "valid", "test")}
    if not all(p.is_file() for p in paths.values()):
        folder.mkdir(parents=True, exist_ok=True)
        sizes = {"train": n_train, "valid": n_valid, "test": n_test}
        for split, (texts, labels) in load_labelled(dataset, seed=0).items():
            keep = np.random.default_rng(0).permutation(len(texts))[:sizes[split] or len(texts)]
            with open(paths[split], "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["text", "label"])
                writer.writerows((texts[i], labels[i]) for i in sorted(keep))
    return DataSpec(train=[str(paths["train"])], valid=str(paths["valid"]), test=str(paths["test"]))


def clickbait_data():
    """The clickbait split every notebook uses (QUICK: 8,000 of the 23,040 training headlines, all of valid and test)."""
    return labelled_subset("clickbait", n_train=8000)
