"""analysis/ layer: a short report of a pipeline run: a markdown metrics table, the loss curves and the LR schedule
as PNG.

Reads only what the stages wrote: each run dir's config.json (the resolved config) and metrics.jsonl (the
per-50-step training loss and the per-epoch evaluation). matplotlib is imported lazily (a dev extra).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..files import CONFIG_FILE, METRICS_FILE
from ..config import StageConfig
from ..train.schedule import discriminative_lrs


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _plot_per_stage(runs: dict[str, Path], path: Path, draw) -> None:
    """One panel per stage, side by side; `draw(ax, stage, run_dir)` fills a panel."""
    # a Figure of its own, not pyplot: switching pyplot's backend to Agg here (as this did) silenced every later
    # plt.show() in a notebook that trained a run, and a Figure needs no plt.close
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4.2 * len(runs), 3.2))
    axes = fig.subplots(1, len(runs), squeeze=False)
    for ax, (stage, run_dir) in zip(axes[0], runs.items()):
        draw(ax, stage, Path(run_dir))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _draw_losses(ax, stage: str, run_dir: Path) -> None:
    records = read_metrics(run_dir)
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") in ("epoch", "eval") and "valid_loss" in r]
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train (running mean)")
    ax.plot([r["step"] for r in evals], [r["valid_loss"] for r in evals], "o-", label="valid")
    ax.set(title=stage, xlabel="optimiser step", ylabel="cross-entropy")
    ax.legend(fontsize=8)


def _draw_lr(ax, stage: str, run_dir: Path) -> None:
    """The logged LR (STLR or one-cycle) with the discriminative LR of every layer group (ULMFiT §3.2).
    Frozen groups are drawn too: their LR applies once the group is unfrozen."""
    config = StageConfig.from_dict(json.loads((run_dir / CONFIG_FILE).read_text())["config"])
    train = [r for r in read_metrics(run_dir) if r.get("kind") == "train"]   # the top group's LR, as logged
    n_groups = config.model.n_layers + (2 if stage == "classify" else 1)
    for k, scale in enumerate(discriminative_lrs(1.0, n_groups, config.train.lr_decay_per_layer)):
        ax.plot([r["step"] for r in train], [r["lr"] * scale for r in train], lw=1, label=f"group {k}")
    ax.set(title=f"{stage}: {config.train.schedule}", xlabel="step", ylabel="learning rate")
    ax.legend(fontsize=7)


def plot_losses(runs: dict[str, Path], path: Path) -> None:
    _plot_per_stage(runs, path, _draw_losses)


def plot_lr_schedule(runs: dict[str, Path], path: Path) -> None:
    _plot_per_stage(runs, path, _draw_lr)


def write_report(runs: dict[str, Path], results: dict[str, dict], out_dir: Path, title: str,
                 notes: list[str] = ()) -> Path:
    """Write report.md (+ loss_curves.png, lr_schedule.png) into `out_dir`; returns the markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", "| stage | run dir | wall time | result |", "|---|---|---|---|"]
    for stage, res in results.items():
        shown = {k: v for k, v in res.items() if k.startswith(("valid", "test", "before_valid")) and
                 isinstance(v, float)}
        text = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
        lines.append(f"| {stage} | `{runs[stage]}` | {res.get('seconds', 0) / 60:.1f} min | {text} |")
    lines += [""] + [f"- {n}" for n in notes]
    try:
        plot_losses(runs, out_dir / "loss_curves.png")
        plot_lr_schedule(runs, out_dir / "lr_schedule.png")
        lines += ["", "![loss curves](loss_curves.png)", "", "![LR schedule](lr_schedule.png)"]
    except ImportError:
        lines += ["", "(matplotlib is not installed: `pip install matplotlib` for the plots)"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
