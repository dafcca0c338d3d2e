"""`make demo`: the three ULMFiT stages on an embedded default, within ~15 minutes on 2 CPU cores.

    1. pretrain an AWD-LSTM LM on WikiText-2            (ULMFiT §3.1)
    2. fine-tune it on the Stop Clickbait headlines    (§3.2: discriminative LR + STLR)
    3. train the classifier with gradual unfreezing    (§3.3)

then print the test accuracy and write runs/demo/report.md with the loss curves and the LR schedules as PNG.
The step budgets below were measured on this project's 2-core CPU machine (see README "Results"); a finished
stage is reused when its run dir is complete, so an interrupted demo picks up where it stopped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import checkpoint as ckpt
from .config import apply_overrides, preset
from .errors import UlmfitError
from .pipeline import DataSpec, classify, finetune, pretrain
from .report import write_report

# (preset, overrides) per stage. Each stage trains to a wall-time budget (`max_minutes`): the LR schedule
# follows the clock, so the demo keeps its ~15 minutes on a slower or busier machine, at some cost in accuracy.
DEMO = {
    "pretrain": ("small", ["epochs=1", "max_minutes=4.5"]),
    "finetune": ("small", ["epochs=3", "max_minutes=3.5"]),
    "classify": ("small", ["epochs=4", "max_minutes=5"]),
}
QUICK = {                                    # seconds, for the test suite
    "pretrain": ("tiny", ["max_steps=15", "tokenizer.vocab_size=300"]),
    "finetune": ("tiny", ["max_steps=10"]),
    "classify": ("tiny", ["max_steps=20"]),
}


def _finished(run_dir: Path) -> dict | None:
    """The results saved in a complete run dir, or None."""
    if (run_dir / ckpt.WEIGHTS_FILE).is_file() and (run_dir / ckpt.CONFIG_FILE).is_file():
        return ckpt.read_json(run_dir / ckpt.CONFIG_FILE).get("results")
    return None


def run_demo(runs: Path, plan: dict, corpus: str = "wikitext2", dataset: str = "clickbait",
             force: bool = False) -> dict:
    dirs = {stage: runs / stage for stage in plan}
    stage_fns = {
        "pretrain": lambda cfg: pretrain(cfg, DataSpec(dataset=corpus), dirs["pretrain"], force=True),
        "finetune": lambda cfg: finetune(cfg, dirs["pretrain"], DataSpec(dataset=dataset), dirs["finetune"],
                                         force=True),
        "classify": lambda cfg: classify(cfg, dirs["finetune"], DataSpec(dataset=dataset), dirs["classify"],
                                         force=True),
    }
    results = {}
    for stage, (name, overrides) in plan.items():
        done = None if force else _finished(dirs[stage])
        if done is not None:
            print(f"[demo] {stage}: reusing the finished run in {dirs[stage]}", flush=True)
            results[stage] = done
            continue
        print(f"[demo] {stage}: preset {name}, {' '.join(overrides)}", flush=True)
        start = time.perf_counter()
        result = stage_fns[stage](apply_overrides(preset(name, stage), overrides))
        result["seconds"] = round(time.perf_counter() - start, 1)
        _remember(dirs[stage], result)
        results[stage] = result
    return results


def _remember(run_dir: Path, result: dict) -> None:
    meta = ckpt.read_json(run_dir / ckpt.CONFIG_FILE)
    meta["results"] = {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
    ckpt.write_json(run_dir / ckpt.CONFIG_FILE, meta)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ulmfit.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/demo"))
    parser.add_argument("--quick", action="store_true", help="a seconds-long run on the tiny preset (tests)")
    parser.add_argument("--force", action="store_true", help="rerun stages even when their run dir is complete")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        results = run_demo(args.runs, QUICK if args.quick else DEMO, force=args.force)
    except UlmfitError as e:
        print(f"ulmfit demo: error: {e}", file=sys.stderr)
        return 2
    minutes = (time.perf_counter() - start) / 60
    total = sum(r.get("seconds", 0) for r in results.values()) / 60
    acc = results["classify"].get("test_accuracy")
    notes = [f"total training wall time {total:.1f} min (this invocation: {minutes:.1f} min)",
             f"clickbait test accuracy {acc:.4f} on {results['classify'].get('n_test')} headlines (80/20 split)"]
    report = write_report({s: args.runs / s for s in results}, results, args.runs, "ulmfit demo: WikiText-2 -> "
                          "clickbait", notes)
    print(f"\nclickbait test accuracy: {acc:.2%}   report: {report}")
    print(json.dumps({"test_accuracy": acc, "minutes": round(total, 2), "report": str(report)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
