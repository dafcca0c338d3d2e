"""Language-model throughput of our AWD-LSTM against a plain nn.LSTM stack (issue 3, §6).

The `paper` model config with a 30,000-token vocabulary, batch 32, bptt 70, on 2 threads. For each model
(`awd`: our LanguageModel with every regulariser on, AR/TAR in the loss; `plain`: embedding + nn.LSTM
layers of the same shapes + tied decoder, no dropout) and each precision (fp32, bf16 autocast) it times

  train  one step = forward + full-vocabulary cross-entropy + backward + Adam step (hidden carried, detached)
  infer  one forward in eval mode under no_grad, logits included

and reports the median tokens/s over several rounds after warm-up (the cells take turns, one step each per
round, so that load from other processes falls on all of them alike), plus the process's peak RSS (all four
models are alive at once). The last
line of output is one JSON object (keys `<model>_<precision>_<train|infer>_tok_s` and `peak_rss_mb`).

    python benchmarks/lm_throughput.py            # full run (a few minutes)
    python benchmarks/lm_throughput.py --quick    # fewer repeats, for a smoke check
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ulmfit.text.batching import LMBatches
from ulmfit.model.awd_lstm import LanguageModel, detach_hidden, layer_sizes
from ulmfit.config import preset
from ulmfit.model.regularizers import activation_penalty, temporal_penalty
from ulmfit.runtime import cpu_flags, cpu_name, precision_problem

AR_ALPHA, TAR_BETA = 2.0, 1.0


class PlainLSTMStack(nn.Module):
    """The baseline: embedding -> nn.LSTM per layer -> tied decoder, no regulariser at all."""

    def __init__(self, config):
        super().__init__()
        self.embedding = nn.Embedding(config.vocab_size, config.emb_size, padding_idx=config.pad_id)
        self.rnns = nn.ModuleList(nn.LSTM(i, o, batch_first=True) for i, o in layer_sizes(config))
        self.decoder = nn.Linear(config.emb_size, config.vocab_size)
        self.decoder.weight = self.embedding.weight

    def forward(self, tokens, hidden=None):
        x = self.embedding(tokens)
        hidden = hidden or [None] * len(self.rnns)
        new_hidden = []
        for rnn, state in zip(self.rnns, hidden):
            x, state = rnn(x, state)
            new_hidden.append(state)
        return self.decoder(x), new_hidden


def lm_loss(model, tokens, targets, hidden):
    """Full-vocabulary cross-entropy in fp32 (+ AR/TAR for the AWD-LSTM) and the next hidden state."""
    if isinstance(model, LanguageModel):
        out = model(tokens, hidden)
        loss = F.cross_entropy(out.logits.float().flatten(0, 1), targets.flatten())
        loss = loss + activation_penalty(out.dropped_outputs[-1], AR_ALPHA)
        loss = loss + temporal_penalty(out.raw_outputs[-1], TAR_BETA)
        return loss, out.hidden
    logits, hidden = model(tokens, hidden)
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten()), hidden


def autocast(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Cell:
    """One (model, precision) combination with its own optimizer and carried hidden state."""

    def __init__(self, name: str, precision: str, config, batches, loader=None):
        torch.manual_seed(0)
        self.name, self.precision, self.batches, self.loader = name, precision, batches, loader
        self.model = PlainLSTMStack(config) if name == "plain" else LanguageModel(config)
        self.stream = None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4, foreach=True)  # as train.py
        self.hidden, self.step = None, 0

    def next_batch(self):
        """The next (tokens, targets): from the fixed list, or from the real LMBatches loader (timed)."""
        if self.loader is None:
            return self.batches[self.step % len(self.batches)]
        batch = next(self.stream, None) if self.stream is not None else None
        if batch is None:
            self.stream = self.loader.iter_epoch(self.step, 0)
            batch = next(self.stream)
        return batch

    def train_step(self) -> tuple[float, int]:
        """(seconds, tokens) for forward + full-vocabulary CE + backward + Adam step on the next batch. For the
        loader cell, fetching the batch from the memory-mapped corpus is inside the timed region, and its batches
        are shorter than bptt on average (variable BPTT), so the tokens are counted, not assumed."""
        start = time.perf_counter()
        tokens, targets = self.next_batch()
        if self.loader is None:
            start = time.perf_counter()
        self.step += 1
        self.model.train()
        with autocast(self.precision):
            loss, hidden = lm_loss(self.model, tokens, targets, self.hidden)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.hidden = detach_hidden(hidden)
        return time.perf_counter() - start, tokens.numel()

    def infer_step(self) -> tuple[float, int]:
        """(seconds, tokens) for one eval forward under no_grad, logits included."""
        tokens, _ = self.batches[self.step % len(self.batches)]
        self.step += 1
        self.model.eval()
        start = time.perf_counter()
        with torch.no_grad(), autocast(self.precision):
            if isinstance(self.model, LanguageModel):
                self.hidden = self.model(tokens, self.hidden).hidden
            else:
                self.hidden = self.model(tokens, self.hidden)[1]
        return time.perf_counter() - start, tokens.numel()


def _memmapped_loader(folder: Path, vocab_size: int, batch_size: int, bptt: int) -> LMBatches:
    """LMBatches over a 2M-token random corpus on disk (uint16 memmap, 1,000 documents), shuffled each epoch."""
    rng = np.random.default_rng(0)
    ids = rng.integers(4, vocab_size, 2_000_000).astype(np.uint16)
    np.save(folder / "corpus.ids.npy", ids)
    offsets = np.linspace(0, len(ids), 1001).astype(np.int64)
    return LMBatches(np.load(folder / "corpus.ids.npy", mmap_mode="r"), offsets, batch_size, bptt, shuffle=True,
                     seed=0)


def time_round_robin(cells: list[Cell], mode: str, warmup: int, repeats: int) -> dict[str, list[tuple[float, int]]]:
    """(seconds, tokens) per step for every cell. The cells take turns, one step each per round, so that load from
    other processes on a shared machine falls on all of them alike and their medians stay comparable."""
    if mode == "infer":                              # the loader cell measures training only
        cells = [c for c in cells if c.loader is None]
    times = {f"{c.name}_{c.precision}": [] for c in cells}
    for cell in cells:
        cell.hidden = None                           # a new stream for each mode
    for round_ in range(warmup + repeats):
        for cell in cells:
            seconds_tokens = cell.train_step() if mode == "train" else cell.infer_step()
            if round_ >= warmup:
                times[f"{cell.name}_{cell.precision}"].append(seconds_tokens)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 warm-up + 3 timed rounds instead of 2 + 9")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=30000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=70)
    parser.add_argument("--only", default="", help="comma list of cells to run, e.g. awd_bf16,plain_fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warmup, repeats = (1, 3) if args.quick else (2, 9)

    config = preset("paper", "pretrain").model
    config.vocab_size = args.vocab_size
    stream = torch.randint(4, config.vocab_size, (args.batch_size, args.bptt * 4 + 1))
    batches = [(stream[:, i:i + args.bptt], stream[:, i + 1:i + 1 + args.bptt])
               for i in range(0, args.bptt * 4, args.bptt)]

    load_start = round(os.getloadavg()[0], 2)
    results = {"cpu": cpu_name(), "cpu_flags": cpu_flags()}
    print(f"CPU: {results['cpu']} ({' '.join(results['cpu_flags']) or 'no AVX2'})", flush=True)
    wanted = set(filter(None, args.only.split(",")))
    bf16_problem = precision_problem("bf16", "cpu")
    if bf16_problem:                                  # e.g. an AVX2-only CPU: the bf16 cells cannot run there
        print(f"bf16 cells: unavailable ({bf16_problem})", flush=True)
        results["bf16_unavailable"] = bf16_problem
    cells = [Cell(m, p, config, batches) for m in ("awd", "plain") for p in ("fp32", "bf16")
             if (not wanted or f"{m}_{p}" in wanted) and not (p == "bf16" and bf16_problem)]
    workdir = tempfile.TemporaryDirectory()
    if not wanted or "awdloader_fp32" in wanted:     # the same model fed by the real pipeline's loader
        cells.append(Cell("awdloader", "fp32", config, batches,
                          loader=_memmapped_loader(Path(workdir.name), config.vocab_size, args.batch_size,
                                                   args.bptt)))
    rows = []
    for mode in ("train", "infer"):
        for key, steps in time_round_robin(cells, mode, warmup, repeats).items():
            times = [seconds for seconds, _ in steps]
            median = statistics.median(times)
            tok_s = statistics.median(n / seconds for seconds, n in steps)
            results[f"{key}_{mode}_tok_s"] = round(tok_s, 1)
            name, precision = key.split("_")
            rows.append((name, precision, mode, tok_s, median, min(times), max(times)))
            print(f"{name:>5} {precision:>4} {mode:>5}  {tok_s:8.0f} tok/s  "
                  f"median {median:.3f}s  min {min(times):.3f}s  max {max(times):.3f}s", flush=True)

    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["load_avg_start_end"] = [load_start, round(os.getloadavg()[0], 2)]   # > threads: disturbed run
    print(f"\nconfig: paper (E={config.emb_size}, H={config.hidden_size}, L={config.n_layers}), "
          f"V={config.vocab_size}, B={args.batch_size}, T={args.bptt}, threads={args.threads}, "
          f"warm-up {warmup}, repeats {repeats}, torch {torch.__version__}")
    print(f"{'model':>5} {'prec':>4} {'mode':>5} {'tok/s':>9} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, precision, mode, tok_s, median, low, high in rows:
        print(f"{name:>5} {precision:>4} {mode:>5} {tok_s:9.0f} {median:9.3f} {low:7.3f} {high:7.3f}")
    fastest = {f"{n}_{p}_{m}": low for n, p, m, _, _, low, _ in rows}
    targets = (("awd_fp32_train", "plain_fp32_train", 0.95), ("awd_bf16_train", "plain_fp32_train", 1.5),
               ("awd_bf16_infer", "plain_fp32_infer", 2.5))
    for cell, base, target in targets:
        if cell in fastest and base in fastest:
            by_median = results[f"{cell}_tok_s"] / results[f"{base}_tok_s"]
            print(f"{cell} / {base}: {by_median:.2f}x by median, "
                  f"{fastest[base] / fastest[cell]:.2f}x by fastest step (target >= {target})")
    print(f"peak RSS {results['peak_rss_mb']:.0f} MB")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
