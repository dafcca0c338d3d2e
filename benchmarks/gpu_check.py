"""GPU self-check (issue 14): one command, one CUDA GPU, under 8 minutes, one JSON line on stdout.

Each check is a time-bounded cell whose failure is recorded, not raised, so one broken cell does not lose the
other figures (progress goes to stderr):

  tests       the `gpu`-marked tests (pytest -m gpu in a subprocess): passed / failed / skipped
  data        WikiText-2 tokenised for the LM cells (kept out of their timings and warning checks)
  lm_<prec>   the `paper` LM on WikiText-2 for --steps steps through the library's own `train.fit` + `LMTask`,
              in fp32, bf16 and fp16: tokens/s, loss finite and falling (first vs last few steps), the dtype
              the LSTM really ran in, whether cuDNN ran it, peak GPU memory, and no warning at all (cuDNN's
              "not part of single contiguous chunk of memory" among them)
  classifier  the paper-size classifier with class weights: a train-mode forward + backward on a batch of 2
              documents and an eval-mode prediction on a batch of 1, in each precision
  pipeline    tiny pretrain -> classify (class_weights=True), forward and backward, then their ensemble

A GPU host may have no internet and no ../shared, so the data comes from gpu_data/ in the checkout (ignored by
git), filled once where the data is:

    python benchmarks/gpu_check.py --prepare   # wikitext2/ + clickbait/ from $ULMFIT_MIRROR or ../shared/data
    python benchmarks/gpu_check.py [--steps 300] [--out gpu_check.json]       # or: make gpu-check

Without CUDA it refuses (one line, exit 2) unless `--device cpu` asks for the same cells at toy size (tiny
preset, a few steps; fp16 reported unavailable with its reason): that is how tests/test_gpu_check.py runs it.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import gc
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))            # a GPU host runs a bare checkout: ulmfit need not be installed there

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ulmfit.data import download as datasets  # noqa: E402
from ulmfit.model.awd_lstm import LanguageModel  # noqa: E402
from ulmfit.text.batching import ClassificationBatches, LMBatches  # noqa: E402
from ulmfit.model.classifier import TextClassifier  # noqa: E402
from ulmfit.config import preset  # noqa: E402
from ulmfit.errors import UlmfitError  # noqa: E402
from ulmfit.train.evaluate import predict_proba  # noqa: E402
from ulmfit.predict import ensemble_proba  # noqa: E402
from ulmfit.pipeline import DataSpec, classify, pretrain  # noqa: E402
from ulmfit.runtime import Runtime, cpu_name, precision_problem, seed_everything  # noqa: E402
from ulmfit.train.tasks import ClassifierTask, LMTask  # noqa: E402
from ulmfit.text.tokenizer import Tokenizer  # noqa: E402
from ulmfit.train.loop import Stage, fit  # noqa: E402

DATA = ROOT / "gpu_data"
NEEDED = ("wikitext2", "clickbait")
PRECISIONS = ("fp32", "bf16", "fp16")
LSTM_DTYPE = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
BUDGET_S = 450                # no cell starts after this: with start-up the run stays under 8 minutes
LIMIT_S = {"tests": 90, "data": 60, "lm": 75, "classifier": 45, "pipeline": 120}
# full: one GPU. toy: --device cpu, every code path in seconds. cls: train major/minor, valid, test documents.
SIZES = {
    "full": dict(preset="paper", steps=300, lm_docs=None, pair_docs=60, pair_steps=40,
                 cls=(1536, 512, 128, 512), doc_lens=(300, 120)),
    "toy": dict(preset="tiny", steps=12, lm_docs=12, pair_docs=8, pair_steps=6, cls=(48, 16, 32, 64),
                doc_lens=(50, 20)),
}


def log(message: str) -> None:
    print(f"[gpu_check] {message}", file=sys.stderr, flush=True)


# ---- data ------------------------------------------------------------------------------------------------
def prepare(dest: Path) -> None:
    """Copy the datasets the check reads into `dest` (gpu_data/), from $ULMFIT_MIRROR or ../shared/data."""
    source = Path(os.environ.get("ULMFIT_MIRROR") or ROOT.parent / "shared" / "data")
    missing = [name for name in NEEDED if not (source / name).is_dir()]
    if missing:
        raise UlmfitError(f"{source} has no {', '.join(missing)}/; set ULMFIT_MIRROR to a folder that holds "
                          f"{' and '.join(NEEDED)}")
    for name in NEEDED:
        shutil.copytree(source / name, dest / name, dirs_exist_ok=True)
        log(f"copied {source / name} -> {dest / name}")


def clickbait_files(work: Path, size: dict) -> tuple[list[str], list[str]]:
    """Train/valid/test CSVs cut from clickbait, the train split 3:1 imbalanced so that class weights matter.
    Returns the test texts and labels."""
    splits = datasets.load_labelled("clickbait", seed=0)
    names = sorted(set(splits["train"][1]))
    n_major, n_minor, n_valid, n_test = size["cls"]

    def pick(split: str, counts) -> list[tuple[str, str]]:
        texts, labels = splits[split]
        rows = list(zip(texts, labels))
        return [row for name, n in zip(names, counts) for row in [r for r in rows if r[1] == name][:n]]

    counts = {"train": (n_major, n_minor), "valid": (n_valid // 2,) * 2, "test": (n_test // 2,) * 2}
    for split in counts:
        with open(work / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label")] + pick(split, counts[split]))
    test = pick("test", counts["test"])
    return [t for t, _ in test], [lab for _, lab in test]


# ---- cells -----------------------------------------------------------------------------------------------
def tests_cell(device: str, limit: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-m", "gpu"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", summary):
        counts["errors" if word.startswith("error") else word] += int(n)
    if proc.returncode not in (0, 5):
        print(proc.stdout[-4000:], proc.stderr[-2000:], file=sys.stderr)
    ok = proc.returncode in (0, 5) and not counts["failed"] and not counts["errors"]
    return {"ok": ok and (device == "cpu" or counts["passed"] > 0), **counts, "summary": summary}


def data_cell(work: Path, size: dict, store: dict) -> dict:
    train = datasets.load_lm_corpus("wikitext2")["train"][:size["lm_docs"]]
    tokenizer = Tokenizer.train(train, preset(size["preset"], "pretrain").tokenizer, work / "tokenizer")
    processes = 1 if size["lm_docs"] else min(4, os.cpu_count() or 1)
    ids, offsets = tokenizer.encode_corpus(train, work / "wikitext2-train", processes=processes)
    store["lm"] = tokenizer.vocab_size, ids, offsets
    return {"ok": True, "train_tokens": int(len(ids)), "vocab_size": tokenizer.vocab_size}


class RecordingLMTask(LMTask):
    """The library's LMTask, noting each step's loss, tokens and start time (fit syncs on each loss)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.losses, self.tokens, self.starts = [], [], []

    def step(self, net, batch, carry):
        self.starts.append(time.perf_counter())
        result = super().step(net, batch, carry)
        self.losses.append(result.metric)
        self.tokens.append(result.items)
        return result


def lm_cell(precision: str, device: str, size: dict, store: dict, limit: float) -> dict:
    problem = precision_problem(precision, device)
    if problem:
        return {"available": False, "reason": problem}
    if "lm" not in store:
        return {"ok": False, "error": "no tokenised WikiText-2: the data cell failed"}
    vocab_size, ids, offsets = store["lm"]
    config = preset(size["preset"], "pretrain")
    config.model.vocab_size = vocab_size
    cfg = config.train
    run = dataclasses.replace(config.run, precision=precision, max_steps=size["steps"],
                              max_minutes=max(limit - 20, 10) / 60)  # fit stops before the cell's alarm
    rt = Runtime(torch.device(device), precision)
    seed_everything(0)
    model = LanguageModel(config.model).to(rt.device)
    ran_in = set()                                      # the dtype the first LSTM's kernel actually produced
    model.encoder.rnns[0].register_forward_hook(lambda m, i, out: ran_in.add(str(out[0].dtype)[6:]))
    batches = LMBatches(ids, offsets, cfg.batch_size, cfg.bptt, shuffle=True, seed=0, variable_length=True)
    task = RecordingLMTask(batches, None, cfg, rt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, task, [Stage("all", cfg.epochs, list(range(len(model.layer_groups()))))], cfg, run, rt,
            desc=f"lm {precision}")
    losses = [float(v) for v in task.losses]
    n, k = len(losses), max(2, min(20, len(losses) // 5))
    if n < 2 * k:
        return {"ok": False, "error": f"only {n} steps ran"}
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    tok_s = sum(task.tokens[k:-1]) / (task.starts[-1] - task.starts[k])      # steps after k warm-up steps
    messages = sorted({f"{w.category.__name__}: {str(w.message)[:160]}" for w in caught})
    checks = {"finite": all(map(math.isfinite, losses)), "falling": last < first, "no_warnings": not messages,
              "lstm_dtype": ran_in == {LSTM_DTYPE[precision]}}
    result = {"steps": n, "tok_s": round(tok_s), "loss_first": round(first, 3), "loss_last": round(last, 3),
              "lstm_dtype": sorted(ran_in), "warnings": messages, "peak_mem_mb": peak_mb(device)}
    if device == "cuda":
        checks["cudnn"] = result["cudnn"] = runs_on_cudnn(model, batches, rt)
    failed = [name for name, good in checks.items() if not good]
    return {"ok": not failed, "failed_checks": failed, **result}


def runs_on_cudnn(model, batches, rt: Runtime) -> bool:
    """Whether one eval forward calls cuDNN's RNN kernel (not the per-step fallback) in this precision."""
    x, _ = next(batches.iter_epoch(0, 0))
    with torch.no_grad(), rt.autocast(), torch.autograd.profiler.profile() as prof:
        model.eval()(x.to(rt.device))
    return any(event.name == "aten::_cudnn_rnn" for event in prof.function_events)


def classifier_cell(device: str, size: dict) -> dict:
    config = preset(size["preset"], "classify")
    config.model.vocab_size = config.tokenizer.vocab_size
    weights = torch.tensor([2 / 3, 2.0])              # classify's inverse-frequency weights for a 3:1 split
    lengths = size["doc_lens"]
    gen = torch.Generator().manual_seed(0)
    tokens = torch.zeros(2, max(lengths), dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens[row, :n] = torch.randint(4, config.model.vocab_size, (n,), generator=gen)
    mask = tokens != 0
    out = {"ok": True}
    for precision in PRECISIONS:
        problem = precision_problem(precision, device)
        if problem:
            out[precision] = {"available": False, "reason": problem}
            continue
        rt = Runtime(torch.device(device), precision)
        seed_everything(0)
        model = TextClassifier.from_config(config.model, 2, config.head, config.train.bptt).to(rt.device).train()
        task = ClassifierTask(None, None, None, config.train, rt, weights)
        with rt.autocast():                       # train mode, batch of 2 (BatchNorm needs 2 in training)
            loss = task.step(model, (tokens, mask, torch.tensor([0, 1])), None).loss
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        one_doc = ClassificationBatches(tokens[0, :lengths[0]].numpy(), np.array([0, lengths[0]]), None, 1,
                                        shuffle=False, seed=0)
        probs = predict_proba(model, one_doc, rt, 1)   # eval mode, batch of 1
        finite = bool(grads) and all(bool(torch.isfinite(g).all()) for g in grads)
        good = (math.isfinite(loss.item()) and finite and probs.shape == (1, 2)
                and abs(float(probs.sum()) - 1) < 1e-3)
        out[precision] = {"ok": good, "train_loss_batch_of_2": round(loss.item(), 4),
                          "eval_probs_batch_of_1": [round(float(p), 4) for p in probs[0]]}
        out["ok"] = out["ok"] and good
    out["peak_mem_mb"] = peak_mb(device)
    return out


def pipeline_cell(device: str, work: Path, size: dict) -> dict:
    precision = "fp16" if device == "cuda" else "fp32"   # on a GPU the paper recipe's (with its GradScaler)
    rt = Runtime(torch.device(device), precision)
    wiki = datasets.load_lm_corpus("wikitext2")
    (work / "wt_train.txt").write_text("\n".join(wiki["train"][:size["pair_docs"]]), encoding="utf-8")
    (work / "wt_valid.txt").write_text("\n".join(wiki["valid"][:2]), encoding="utf-8")
    texts, labels = clickbait_files(work, size)
    lm_data = DataSpec(train=[str(work / "wt_train.txt")], valid=str(work / "wt_valid.txt"))
    cls_data = DataSpec(train=[str(work / "train.csv")], valid=str(work / "valid.csv"),
                        test=str(work / "test.csv"))
    out = {"precision": precision}
    for way, backwards in (("forward", False), ("backward", True)):
        lm, cls = preset("tiny", "pretrain"), preset("tiny", "classify")
        lm.train = dataclasses.replace(lm.train, backwards=backwards)
        lm.run = dataclasses.replace(lm.run, max_steps=size["pair_steps"], precision=precision)
        cls.train = dataclasses.replace(cls.train, backwards=backwards, class_weights=True)
        cls.run = dataclasses.replace(cls.run, max_steps=size["pair_steps"], precision=precision)
        pretrain(lm, lm_data, work / f"lm-{way}", tokenizer_dir=work / "lm-forward" if backwards else None,
                 force=True, rt=rt)
        result = classify(cls, work / f"lm-{way}", cls_data, work / f"cls-{way}", force=True, rt=rt)
        out[f"{way}_test_accuracy"] = round(result["test_accuracy"], 4)
    probs, names = ensemble_proba([work / "cls-forward", work / "cls-backward"], texts, rt=rt)
    truth = np.array([names.index(y) for y in labels])
    out["ensemble_test_accuracy"] = round(float((probs.argmax(1) == truth).mean()), 4)
    out["ok"] = probs.shape == (len(texts), 2) and bool(np.allclose(probs.sum(1), 1, atol=1e-3))
    return out


# ---- running the cells -----------------------------------------------------------------------------------
class CellTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CellTimeout()


def run_cell(cells: dict, name: str, fn, limit: float, deadline: float, device: str) -> None:
    """cells[name] = fn()'s result, or a record of why it failed; SIGALRM bounds it to its share of time."""
    seconds = int(min(limit, deadline - time.monotonic()))
    if seconds < 5:
        cells[name] = {"ok": False, "error": "not run: the check's time budget was spent"}
        log(f"{name}: skipped (time budget spent)")
        return
    log(f"{name}: running (at most {seconds} s)")
    start, previous = time.perf_counter(), signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        with contextlib.redirect_stdout(sys.stderr):     # tqdm.write & co. must not mix into the JSON line
            result = fn(seconds)
    except (CellTimeout, subprocess.TimeoutExpired):
        result = {"ok": False, "error": f"timed out after {seconds} s"}
    except Exception as e:                              # recorded, so the other cells still report
        traceback.print_exc(file=sys.stderr)
        first_line = (str(e).splitlines() or [""])[0][:300]
        result = {"ok": False, "error": f"{type(e).__name__}: {first_line}"}
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    result["seconds"] = round(time.perf_counter() - start, 1)
    cells[name] = result
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    status = "unavailable" if result.get("available") is False else "ok" if result.get("ok") else "FAILED"
    log(f"{name}: {status} ({result['seconds']} s) {result.get('error') or result.get('reason') or ''}")


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device: str):
    return round(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None


def check(args) -> dict:
    if args.device == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}, no GPU visible" if torch.version.cuda else "CPU-only build"
        raise UlmfitError(f"no CUDA device here (torch {torch.__version__}, {build}); run it on a GPU host, "
                          "or pass --device cpu for the toy-size check")
    missing = [name for name in NEEDED if not (args.data / name).is_dir()]
    if missing:
        raise UlmfitError(f"{args.data} has no {', '.join(missing)}/: run `python benchmarks/gpu_check.py "
                          "--prepare` where the data is (and take gpu_data/ along to the GPU host)")
    wall, deadline = time.perf_counter(), time.monotonic() + BUDGET_S
    size = dict(SIZES["full" if args.device == "cuda" else "toy"])
    size["steps"] = args.steps or size["steps"]
    device, cells, store = args.device, {}, {}
    if device == "cpu":
        torch.set_num_threads(1)           # at toy sizes a second thread costs more in sync than it computes
    os.environ["ULMFIT_MIRROR"] = str(args.data.resolve())
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        os.environ["ULMFIT_CACHE"] = str(work / "cache")  # offline host: a missing file fails, no download
        run_cell(cells, "tests", lambda s: tests_cell(device, s), LIMIT_S["tests"], deadline, device)
        run_cell(cells, "data", lambda s: data_cell(work, size, store), LIMIT_S["data"], deadline, device)
        for precision in PRECISIONS:
            reset_peak(device)
            run_cell(cells, f"lm_{precision}", lambda s: lm_cell(precision, device, size, store, s),
                     LIMIT_S["lm"], deadline, device)
        reset_peak(device)
        run_cell(cells, "classifier", lambda s: classifier_cell(device, size), LIMIT_S["classifier"],
                 deadline, device)
        run_cell(cells, "pipeline", lambda s: pipeline_cell(device, work, size), LIMIT_S["pipeline"],
                 deadline, device)
    cuda = device == "cuda"
    return {"ok": all(cell.get("ok", True) for cell in cells.values()),
            "device": torch.cuda.get_device_name() if cuda else cpu_name(), "mode": "full" if cuda else "toy",
            "torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None, "python": platform.python_version(),
            "preset": size["preset"], "steps": size["steps"], "wall_s": round(time.perf_counter() - wall, 1),
            "cells": cells}


class _Parser(argparse.ArgumentParser):
    def error(self, message):              # one line, exit 2, like the ulmfit CLI
        raise UlmfitError(message)


def _steps(text: str) -> int:
    if not text.isdigit() or int(text) < 4:
        raise argparse.ArgumentTypeError(f"--steps must be a whole number >= 4, got {text!r}")
    return int(text)


def main(argv=None) -> int:
    parser = _Parser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", action="store_true", help="copy the data into gpu_data/ and exit")
    parser.add_argument("--steps", type=_steps, default=0,
                        help="LM steps per precision (default 300; 12 with --device cpu)")
    parser.add_argument("--out", type=Path, help="also write the JSON line to this file")
    parser.add_argument("--data", type=Path, default=DATA, help="the data folder (default: gpu_data/ here)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the same cells at toy size, to test this script")
    try:
        args = parser.parse_args(argv)
        if args.prepare:
            prepare(args.data)
            return 0
        report = check(args)
    except UlmfitError as e:
        print(f"gpu_check: error: {e}", file=sys.stderr)
        return 2
    line = json.dumps(report)
    print(line, flush=True)
    if args.out:
        args.out.write_text(line + "\n", encoding="utf-8")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
