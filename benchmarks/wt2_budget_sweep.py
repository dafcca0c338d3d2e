"""What buys WikiText-2 perplexity per CPU-minute: pretraining variants under the same wall-time budget.

    python benchmarks/wt2_budget_sweep.py --out runs/sweep --minutes 8 --parallel 2 --threads 1 \
        --variant base= --variant flat_lr=lr_decay_per_layer=1 --variant b32=lr_decay_per_layer=1,batch_size=32

Each `--variant NAME=field=value,field=value` is `ulmfit pretrain --preset small` with those `--set` overrides and a
`max_minutes` budget (the LR schedule follows the clock, so every variant finishes its whole schedule). Variants run
`--parallel` at a time with `--threads` each, so variants in one sweep share the machine in the same way: compare
them with each other, not with a run that had the machine to itself. Prints a table; the last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, sets = text.partition("=")
    return name, [s for s in sets.split(",") if s]


def last_eval(run_dir: Path) -> dict:
    """The last validation of a run: an end-of-epoch record or an eval_every one, whichever came last."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "valid_ppl_word" in r][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", default="wikitext2")
    parser.add_argument("--tokenizer", type=Path, help="reuse this tokenizer dir (variants that set vocab_size "
                        "train their own)")
    parser.add_argument("--variant", action="append", required=True, type=parse_variant)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pending, running, rows = list(args.variant), [], {}
    while pending or running:
        while pending and len(running) < args.parallel:
            name, sets = pending.pop(0)
            cmd = [sys.executable, "-m", "ulmfit", "pretrain", "--dataset", args.dataset, "--preset", "small",
                   "--out", str(args.out / name), "--force", "--threads", str(args.threads),
                   "--set", "epochs=50", "--set", f"max_minutes={args.minutes}", "--set", "save_every=0"]
            for s in sets:
                cmd += ["--set", s]
            if args.tokenizer and not any(s.startswith("vocab_size") for s in sets):
                cmd += ["--tokenizer", str(args.tokenizer)]
            log = open(args.out / f"{name}.log", "w")
            running.append((name, sets, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time()))
        time.sleep(5)
        for item in list(running):
            name, sets, proc, start = item
            if proc.poll() is None:
                continue
            running.remove(item)
            if proc.returncode:
                rows[name] = {"sets": sets, "error": f"exit {proc.returncode}, see {args.out / name}.log"}
                continue
            ev = last_eval(args.out / name)
            rows[name] = {"sets": sets, "valid_ppl_word": round(ev["valid_ppl_word"], 1),
                          "valid_ppl_token": round(ev["valid_ppl"], 2), "steps": ev["step"],
                          "wall_minutes": round((time.time() - start) / 60, 1)}
            print(name, rows[name], flush=True)
    print(f"\n{'variant':<14} {'ppl/word':>9} {'ppl/token':>9} {'steps':>6}  overrides")
    for name, r in rows.items():
        print(f"{name:<14} {r.get('valid_ppl_word', 'ERR'):>9} {r.get('valid_ppl_token', ''):>9} "
              f"{r.get('steps', ''):>6}  {' '.join(r['sets'])}")
    print(json.dumps({"minutes": args.minutes, "threads": args.threads, "parallel": args.parallel, "rows": rows}))


if __name__ == "__main__":
    main()
