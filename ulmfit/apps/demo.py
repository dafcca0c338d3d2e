"""apps/ layer: `make demo`, the three ULMFiT stages on an embedded default, within 14 minutes of wall time on any
machine.

    1. pretrain an AWD-LSTM LM on WikiText-2            (ULMFiT §3.1)
    2. fine-tune it on the Stop Clickbait headlines    (§3.2: discriminative LR + STLR)
    3. train the classifier with gradual unfreezing    (§3.3)

then print the test accuracy and write runs/demo/report.md with the loss curves and the LR schedules as PNG.
The budget shares below were chosen on a 2-core CPU slowed to the speed of the slowest machine seen (see
benchmarks/results/demo.txt); a finished stage is reused when its run dir is complete, so an interrupted demo
picks up where it stopped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..config import apply_overrides, preset
from ..errors import UlmfitError
from ..pipeline import DataSpec, classify, finetune, pretrain
from ..analysis.plots import write_report
from ..runtime import cpu_flags, cpu_name

# (preset, overrides, share) per stage. The demo keeps one promise on any machine: the whole run, tokenizing and
# evaluation included, ends within `--minutes`. Each stage's `max_minutes` (which counts from the stage's start, so
# its tokenizing is charged to it) is its share of the time still left when it starts, so an overrun in one stage
# (a stage's final validation, test pass and report) is absorbed by the stages after it. A slower machine trains fewer
# steps; the LR schedules follow the clock, so each stage still completes its whole STLR cycle.
#
# The recipe was chosen stage by stage on validation data, on a CPU slowed to the slowest machine seen
# (benchmarks/results/demo.txt, session 11): a run this short sees each token about once, so
# - pretraining drops dropout (nothing to overfit yet) and takes twice the LR on windows of half the length
#   (bptt 35): twice the updates for the same tokens, WikiText-2 valid perplexity 100 -> 78;
# - LM fine-tuning takes a 16x higher top LR (3.2e-2; the lower groups get it / 2.6^k) on bptt 35: clickbait valid
#   perplexity 44 -> 20, and the classifier's validation accuracy rose with every step of that (99.0 -> 99.3%);
# - the classifier finishes its 4 epochs of gradual unfreezing in ~5 of its minutes on that CPU (a 5th epoch did
#   not help), so the minutes it left unused now go to LM fine-tuning (0.24 -> 0.34 of the budget).
DEMO_SIZES = ["tokenizer.vocab_size=4000", "model.emb_size=128", "model.hidden_size=384"]
DEMO = {
    "pretrain": ("small", ["epochs=1", "eval_tokens=60000", *DEMO_SIZES, "model.dropout_scale=0", "lr=1e-2",
                           "bptt=35"], 0.20),
    "finetune": ("small", ["epochs=2", "freeze_first_epoch=false", "lr=3.2e-2", "bptt=35"], 0.34),
    "classify": ("small", ["epochs=4", "model.dropout_scale=0.3"], 0.46),
}
DEMO_MINUTES = 14.0
# kept back from the last stage for what follows its training: validation passes, the test set, the report
FINAL_RESERVE = 0.07
QUICK = {                                    # seconds, for the test suite
    "pretrain": ("tiny", ["max_steps=15", "tokenizer.vocab_size=300"], 0.33),
    "finetune": ("tiny", ["max_steps=10"], 0.25),
    "classify": ("tiny", ["max_steps=20"], 0.42),
}


def _finished(run_dir: Path) -> dict | None:
    """The results saved in a complete run dir, or None."""
    if (run_dir / ckpt.WEIGHTS_FILE).is_file() and (run_dir / ckpt.CONFIG_FILE).is_file():
        return ckpt.read_json(run_dir / ckpt.CONFIG_FILE).get("results")
    return None


def stage_minutes(seconds_left: float, shares: list[float]) -> float:
    """The first of `shares`' stages gets its share of the time left, among the stages still to run."""
    return max(seconds_left, 6.0) * shares[0] / sum(shares) / 60


def run_demo(runs: Path, plan: dict, corpus: str = "wikitext2", dataset: str = "clickbait",
             force: bool = False, minutes: float = 0.0) -> dict:
    """Run the stages of `plan`; with `minutes` > 0 they share that wall-time budget (see DEMO)."""
    deadline = time.perf_counter() + minutes * (1 - FINAL_RESERVE) * 60
    dirs = {stage: runs / stage for stage in plan}
    stage_fns = {
        "pretrain": lambda cfg: pretrain(cfg, DataSpec(dataset=corpus), dirs["pretrain"], force=True),
        "finetune": lambda cfg: finetune(cfg, dirs["pretrain"], DataSpec(dataset=dataset), dirs["finetune"],
                                         force=True),
        "classify": lambda cfg: classify(cfg, dirs["finetune"], DataSpec(dataset=dataset), dirs["classify"],
                                         force=True),
    }
    results, stages = {}, list(plan)
    for k, (stage, (name, overrides, _)) in enumerate(plan.items()):
        done = None if force else _finished(dirs[stage])
        if done is not None:
            print(f"[demo] {stage}: reusing the finished run in {dirs[stage]}", flush=True)
            results[stage] = done
            continue
        if minutes:
            budget = stage_minutes(deadline - time.perf_counter(), [plan[s][2] for s in stages[k:]])
            overrides = overrides + [f"max_minutes={budget:.2f}"]
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
    parser.add_argument("--minutes", type=float, default=DEMO_MINUTES,
                        help=f"wall-time budget of the whole demo, on any machine (default: {DEMO_MINUTES:g})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        results = run_demo(args.runs, QUICK if args.quick else DEMO, force=args.force,
                           minutes=0.0 if args.quick else args.minutes)
    except UlmfitError as e:
        print(f"ulmfit demo: error: {e}", file=sys.stderr)
        return 2
    minutes = (time.perf_counter() - start) / 60
    total = sum(r.get("seconds", 0) for r in results.values()) / 60
    cls = results["classify"]
    acc = cls.get("test_accuracy")
    notes = [f"total training wall time {total:.1f} min (this invocation: {minutes:.1f} min, budget "
             f"{args.minutes:g} min)", f"CPU: {cpu_name()} ({' '.join(cpu_flags()) or 'no AVX2'}), "
             f"{torch.get_num_threads()} threads",
             f"clickbait test accuracy {acc:.4f} on {results['classify'].get('n_test')} headlines (80/20 split)"]
    report = write_report({s: args.runs / s for s in results}, results, args.runs, "ulmfit demo: WikiText-2 -> "
                          "clickbait", notes)
    print(f"\nclickbait test accuracy: {acc:.2%} (ulmfit alone)   report: {report}")
    if cls.get("baseline_ensemble"):               # chosen on the validation split, never on test
        print(f"the run dir's model, ulmfit averaged with TF-IDF + LR (chosen on validation): "
              f"{cls['ensemble_test_accuracy']:.2%}; TF-IDF + LR alone {cls['baseline_test_accuracy']:.2%}")
    print(json.dumps({"test_accuracy": acc, "ensemble_test_accuracy": cls.get("ensemble_test_accuracy"),
                      "baseline_ensemble": cls.get("baseline_ensemble"), "minutes": round(total, 2),
                      "report": str(report)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
