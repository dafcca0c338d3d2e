"""Training throughput (tokens/s) of 1 process vs 2 DDP processes (gloo, CPU, 1 thread each), same model, same
global batch: 1 x B rows vs 2 x B/2 rows. Uses the real loop (`train.fit`) and the torchrun environment variables.

    python benchmarks/ddp_cpu.py [--steps 60] [--repeats 2] [--out benchmarks/results/ddp_cpu.txt]

Each run is launched as fresh processes. The figure is the loop's own items_per_s for the epoch (tokens summed
over ranks / the epoch's seconds, first steps included); process start-up is outside it, shown apart as wall_s.
"""
from __future__ import annotations

import argparse
import os
import sys
import datetime
import json
import platform
import socket
import subprocess
import time
from pathlib import Path

MODEL = dict(vocab_size=2000, emb_size=64, hidden_size=256, n_layers=2)
GLOBAL_BATCH, BPTT = 32, 35


def worker(steps: int) -> None:
    """One rank: train `steps` steps on a synthetic stream; rank 0 prints the epoch metrics as JSON."""
    import numpy as np
    import torch

    from ulmfit.model.awd_lstm import LanguageModel
    from ulmfit.text.batching import LMBatches
    from ulmfit.config import ModelConfig, RunConfig, TrainConfig
    from ulmfit.runtime import cleanup_runtime, setup_runtime
    from ulmfit.train.tasks import LMTask
    from ulmfit.train.loop import Stage, fit

    rt = setup_runtime(threads=1, device="cpu")
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(**MODEL))
    cfg, run = TrainConfig(batch_size=GLOBAL_BATCH // rt.world_size, bptt=BPTT), RunConfig(max_steps=steps, save_every=0)
    rng = np.random.default_rng(0)
    n = GLOBAL_BATCH * BPTT * (steps + 5)
    ids = rng.integers(4, MODEL["vocab_size"], n).astype(np.uint16)
    batches = LMBatches(ids, np.array([0, n]), cfg.batch_size, BPTT, shuffle=False, seed=0, variable_length=False,
                        rank=rt.rank, world_size=rt.world_size)
    history = fit(model, LMTask(batches, None, cfg, rt), [Stage("all", 1, list(range(3)))], cfg, run, rt)
    if rt.is_main:
        print(json.dumps({"world_size": rt.world_size, **history[-1]}))
    cleanup_runtime()


def launch(world_size: int, steps: int) -> tuple[dict, float]:
    """Start `world_size` worker processes as torchrun would; (rank 0's metrics, wall seconds incl. start-up)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0, procs = time.perf_counter(), []
    for rank in range(world_size):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, __file__, "--worker", "--steps", str(steps)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs):
        if p.returncode:
            raise SystemExit(err[-2000:])
    return json.loads(outs[0][0].strip().splitlines()[-1]), time.perf_counter() - t0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical CPUs)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} logical CPUs)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.worker:
        return worker(args.steps)
    started, t0 = datetime.datetime.now().astimezone(), time.perf_counter()
    load_before = os.getloadavg()
    rows = []
    for r in range(args.repeats):
        for ws in ((1, 2) if r % 2 == 0 else (2, 1)):        # alternate the order: the machine's load drifts
            metrics, wall = launch(ws, args.steps)
            rows.append((ws, metrics["items_per_s"], metrics["seconds"], wall))
            print(f"processes={ws}  tokens/s={metrics['items_per_s']:.0f}  loop={metrics['seconds']:.1f}s  "
                  f"wall incl. start-up={wall:.1f}s", flush=True)
    best = {ws: max(t for w, t, _, _ in rows if w == ws) for ws in (1, 2)}
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True,  # noqa: E731
                                    cwd=Path(__file__).parent).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") + (" (+ uncommitted changes in ulmfit/)"
                                                    if git("status", "--porcelain", "--", "../ulmfit") else "")
    lines = [
        "# ddp_cpu: LM training tokens/s, 1 process vs 2 DDP processes (gloo, CPU, 1 thread each)",
        f"command:  python benchmarks/ddp_cpu.py --steps {args.steps} --repeats {args.repeats}",
        f"commit:   {commit}",
        f"date:     {started.isoformat(timespec='seconds')}",
        f"cpu:      {_cpu()}; load average before {load_before[0]:.2f} (machine shared with other jobs)",
        f"torch:    {__import__('torch').__version__}, python {platform.python_version()}",
        f"model:    AWD-LSTM {MODEL}, global batch {GLOBAL_BATCH} x bptt {BPTT}, {args.steps} steps per run, "
        "default dropouts, AR/TAR on",
        f"wall:     {time.perf_counter() - t0:.1f} s for the whole benchmark",
        "",
        "processes  tokens/s  loop_s  wall_s(incl. start-up)",
        *[f"{ws:>9}  {tps:>8.0f}  {sec:>6.1f}  {wall:>6.1f}" for ws, tps, sec, wall in rows],
        "",
        f"best of {args.repeats}: 1 process {best[1]:.0f} tok/s, 2 processes {best[2]:.0f} tok/s "
        f"-> speed-up x{best[2] / best[1]:.2f}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
