"""Classifier throughput: training and inference documents per second (issue 5 §5).

Times `TextClassifier` at the `paper` sizes (emb 400, hidden 1152, 3 layers, vocab 30000, bptt 70) on
256-token documents (BPT3C: 4 chunks, all of them feeding the pooling since max_len = 1400), in fp32 and under
bf16 autocast, with a fixed number of threads.

- training  = forward + cross-entropy + backward + AdamW step over all parameters (train mode, dropouts on)
- inference = eval mode under torch.no_grad()

Each figure is the median over `--repeats` timed batches after `--warmup` untimed ones; the bf16 cell prints as
unavailable, with the reason, on a CPU without bf16 (e.g. AVX2 only). The last line printed is JSON.

    python benchmarks/classify_throughput.py [--out benchmarks/results/classify_throughput.txt]
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import time

import torch
import torch.nn.functional as F

from ulmfit.model.classifier import TextClassifier
from ulmfit.config import preset
from ulmfit.runtime import cpu_flags, cpu_name, precision_problem



def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per document")
    parser.add_argument("--train-batch-size", type=int, default=32)
    parser.add_argument("--infer-batch-size", type=int, default=64, help="larger batches help inference")
    parser.add_argument("--n-classes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the output here, under a provenance header")
    return parser.parse_args(argv)


def build_model(preset_name: str, n_classes: int) -> TextClassifier:
    config = preset(preset_name, "classify")
    config.model.vocab_size = config.tokenizer.vocab_size   # normally set from the trained tokenizer
    return TextClassifier.from_config(config.model, n_classes, config.head, config.train.bptt)


def random_documents(batch_size: int, seq_len: int, vocab_size: int, n_classes: int, seed: int = 0):
    """Full-length documents (no padding, so every row costs the same) with random labels."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, vocab_size, (batch_size, seq_len), generator=gen)    # (B, T), above special ids
    mask = torch.ones(batch_size, seq_len, dtype=torch.bool)                        # (B, T)
    labels = torch.randint(0, n_classes, (batch_size,), generator=gen)             # (B,)
    return tokens, mask, labels


def median_seconds(step, warmup: int, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds of one `step()`, after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    return statistics.median(wall), statistics.median(cpu)


def time_training(model, batch, bf16: bool, warmup: int, repeats: int) -> tuple[float, float]:
    tokens, mask, labels = batch
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(tokens, mask)                                          # (B, C) fp32
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return median_seconds(step, warmup, repeats)


def time_inference(model, batch, bf16: bool, warmup: int, repeats: int) -> tuple[float, float]:
    tokens, mask, _ = batch
    model.eval()

    def step():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(tokens, mask)

    return median_seconds(step, warmup, repeats)


def provenance(argv: list[str], wall_seconds: float) -> list[str]:
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = f"{names[0]} x {len(names)} logical CPUs" if names else cpu
    return [f"# command: python benchmarks/classify_throughput.py {shlex.join(argv)}".rstrip(),
            f"# git commit: {commit}",
            f"# date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"# cpu: {cpu}; torch {torch.__version__}; python {platform.python_version()}",
            f"# wall time: {wall_seconds:.0f} s; load average at the end (1/5/15 min): "
            + " ".join(f"{x:.1f}" for x in os.getloadavg()) + " (the cores are shared: other jobs slow us)"]


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    wall_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.preset, args.n_classes)
    vocab = model.config.vocab_size
    train_batch = random_documents(args.train_batch_size, args.seq_len, vocab, args.n_classes)
    infer_batch = random_documents(args.infer_batch_size, args.seq_len, vocab, args.n_classes, seed=1)

    lines = [f"preset {args.preset}: emb {model.config.emb_size}, hidden {model.config.hidden_size}, "
             f"{model.config.n_layers} layers, vocab {vocab}, bptt {model.bptt}; {args.seq_len}-token "
             f"documents; {args.threads} threads; train batch {args.train_batch_size}, inference batch "
             f"{args.infer_batch_size}; median of {args.repeats} after {args.warmup} warm-up",
             "", "docs/s from wall-clock time (the JSON); [in brackets] from CPU seconds / threads, "
             "which other jobs on the shared cores disturb less (an estimate)",
             "", f"{'precision':<10} {'train docs/s':>20} {'infer docs/s':>20}"]
    print("\n".join(lines), flush=True)
    result = {"cpu": cpu_name(), "cpu_flags": cpu_flags()}
    bf16_problem = precision_problem("bf16", "cpu")
    for name, bf16 in (("fp32", False), ("bf16", True)):
        if bf16 and bf16_problem:             # e.g. an AVX2-only CPU: print the cell as unavailable, do not crash
            result["bf16_unavailable"] = bf16_problem
            lines.append(f"{name:<10} unavailable: {bf16_problem}")
            print(lines[-1], flush=True)
            continue
        train_wall, train_cpu = time_training(model, train_batch, bf16, args.warmup, args.repeats)
        infer_wall, infer_cpu = time_inference(model, infer_batch, bf16, args.warmup, args.repeats)
        train, infer = args.train_batch_size / train_wall, args.infer_batch_size / infer_wall
        train_alone = args.train_batch_size * args.threads / train_cpu
        infer_alone = args.infer_batch_size * args.threads / infer_cpu
        result[f"train_docs_s_{name}"], result[f"infer_docs_s_{name}"] = round(train, 2), round(infer, 2)
        lines.append(f"{name:<10} {train:9.2f} [{train_alone:7.2f}]  {infer:9.2f} [{infer_alone:7.2f}]")
        print(lines[-1], flush=True)
    footer = ["", f"CPU: {result['cpu']} ({' '.join(result['cpu_flags']) or 'no AVX2'})", json.dumps(result)]
    print("\n".join(footer))
    lines += footer
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(provenance(argv, time.perf_counter() - wall_start) + lines) + "\n")
    return result


if __name__ == "__main__":
    main()
