"""Scale (issue 7 §1, §2): 2 gloo ranks with B/2 rows each train like 1 rank with B rows; bf16 trains on CPU.

The DDP test starts real processes with torchrun's environment variables (RANK, WORLD_SIZE, MASTER_ADDR, ...), so
it goes through `runtime.setup_runtime` exactly as `torchrun --nproc_per_node 2 -m ulmfit ...` would. Dropouts are
0, so the only difference between the runs is how the rows are split: DDP averages the two ranks' gradients, which
equals the gradient of the mean loss over all B rows.
"""
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ulmfit.model.awd_lstm import LanguageModel
from ulmfit.text.batching import LMBatches
from ulmfit.config import ModelConfig, RunConfig, TrainConfig
from ulmfit.runtime import Runtime
from ulmfit.train.tasks import LMTask
from ulmfit.train.loop import Stage, fit

GLOBAL_BATCH, BPTT = 4, 8


def _corpus(seed=0):
    """~210 tokens in 12 documents: 3 batches per epoch for 4 rows of BPTT 8, so every stage runs a few steps."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 25, 12)
    ids = rng.integers(4, 50, lengths.sum()).astype(np.uint16)
    return ids, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def train_ranks(rt: Runtime, out_dir: Path | None, resume: bool = False,
                signal_at: int | None = None) -> tuple[dict, list[dict]]:
    """A frozen-then-unfrozen LM run on this rank's rows; returns (state_dict, history).

    With `signal_at`, rank 1 (only) sends itself SIGTERM during that step: every rank must save and stop."""
    torch.manual_seed(0)                  # the same initial weights on every rank (DDP would broadcast rank 0's anyway)
    model = LanguageModel(ModelConfig(vocab_size=50, emb_size=8, hidden_size=12, n_layers=2, dropout_scale=0.0))
    cfg, run = TrainConfig(batch_size=GLOBAL_BATCH // rt.world_size, bptt=BPTT, lr=1e-2), RunConfig(save_every=2)
    ids, offsets = _corpus()
    shard = dict(rank=rt.rank, world_size=rt.world_size)
    train = LMBatches(ids, offsets, cfg.batch_size, BPTT, shuffle=True, seed=0, **shard)
    valid = LMBatches(ids[:120], np.array([0, 120]), cfg.batch_size, BPTT, shuffle=False, seed=0,
                      variable_length=False, **shard)
    n = len(model.layer_groups())
    stages = [Stage("last", 1, [n - 1]), Stage("all", 2, list(range(n)))]     # DDP is rebuilt per stage
    task = LMTask(train, valid, cfg, rt)
    if signal_at is not None and rt.rank == 1:
        step, calls = task.step, [0]

        def step_then_signal(net, batch, carry):
            calls[0] += 1
            if calls[0] == signal_at:
                os.kill(os.getpid(), signal.SIGTERM)
            return step(net, batch, carry)
        task.step = step_then_signal
    history = fit(model, task, stages, cfg, run, rt, out_dir, resume=resume)
    return model.state_dict(), history


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_ranks(tmp_path: Path, mode: str) -> list[dict]:
    """Start 2 ranks of this file's __main__ on 127.0.0.1 (mode: full | resume); their saved results."""
    port, procs = _free_port(), []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, __file__, str(tmp_path), mode], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    return [torch.load(tmp_path / f"rank{r}-{mode}.pt", weights_only=True) for r in range(2)]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """The 1-rank reference (in this process), a 2-rank run, and a 2-rank run stopped by SIGTERM on rank 1 at
    step 4 (its resume.pt copied aside) then resumed."""
    tmp = tmp_path_factory.mktemp("ddp")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train_ranks(Runtime(device=torch.device("cpu")), None)
    finally:
        torch.set_num_threads(threads)
    full = _run_two_ranks(tmp, "full")
    resumed = _run_two_ranks(tmp, "resume")
    snapshot = torch.load(tmp / "resume-at-stop.pt", weights_only=True)
    return {"single": single, "full": full, "snapshot": snapshot, "resumed": resumed}


@pytest.mark.slow
class TestTwoGlooRanks:
    def test_weights_match_one_rank(self, ddp_runs):
        """After 7 steps over a frozen and an unfrozen stage, rank 0's weights equal the 1-rank run's to ~1e-5."""
        single, _ = ddp_runs["single"]
        for name, value in single.items():
            torch.testing.assert_close(ddp_runs["full"][0]["state"][name], value, atol=2e-5, rtol=1e-4, msg=name)

    def test_ranks_agree(self, ddp_runs):
        """Both ranks end with bit-identical weights (gradients are all-reduced, the step is the same)."""
        rank0, rank1 = ddp_runs["full"]
        for name, value in rank0["state"].items():
            assert torch.equal(rank1["state"][name], value), name

    def test_metrics_are_reduced(self, ddp_runs):
        """The epoch metrics (train loss over both ranks' rows, valid loss over both shards) match the 1-rank run."""
        _, history = ddp_runs["single"]
        for key in ("train_loss", "valid_loss"):
            expect = [h[key] for h in history]
            for rank in ddp_runs["full"]:
                assert [h[key] for h in rank["history"]] == pytest.approx(expect, rel=1e-4)

    def test_signal_on_one_rank_stops_both(self, ddp_runs):
        """SIGTERM reaching rank 1 alone makes both ranks save at the same step and raise Interrupted."""
        assert [r["interrupted"] for r in ddp_runs["resumed"]] == [signal.SIGTERM, signal.SIGTERM]
        assert ddp_runs["snapshot"]["position"]["step"] == 4

    def test_resume_holds_each_ranks_stream(self, ddp_runs):
        """The resume checkpoint (written by rank 0) keeps both ranks' own hidden states, which differ."""
        saved = ddp_runs["snapshot"]
        assert saved["position"]["world_size"] == 2 and len(saved["ranks"]) == 2
        h0, h1 = saved["ranks"][0]["carry"][0][0], saved["ranks"][1]["carry"][0][0]
        assert h0.shape == (1, GLOBAL_BATCH // 2, 12) and not torch.equal(h0, h1)

    def test_resumed_run_is_bit_identical(self, ddp_runs):
        """Stopped at step 4 and resumed on 2 ranks, the weights equal the uninterrupted 2-rank run's exactly."""
        for name, value in ddp_runs["full"][0]["state"].items():
            assert torch.equal(ddp_runs["resumed"][0]["state"][name], value), name


@pytest.mark.slow
class TestTorchrunCLI:
    def test_three_stages_under_torchrun(self, tmp_path):
        """`torchrun --nproc_per_node 2 -m ulmfit` pretrain, finetune and classify finish, with one result line.

        The classifier gets 33 training documents in global batches of 2 x 16: one rank gets a document more (the
        padding repeats one) and the last global batch holds 2, one per rank, on which BatchNorm would fail."""
        rng = np.random.default_rng(0)
        words = np.array("the a film plot was good bad very fine awful".split())
        docs = [tmp_path / f"d{i}.txt" for i in range(12)]
        for i, path in enumerate(docs):
            path.write_text("\n".join(" ".join(rng.choice(words, 12)) for _ in range(30)) + "\n")
        for name, n_pos, n_neg in (("l.csv", 17, 16), ("v.csv", 5, 5)):
            rows = ["text,label"] + [f"{' '.join(rng.choice(words[:6], 8))} {w},{lab}"
                                     for lab, w, n in (("pos", "good", n_pos), ("neg", "bad", n_neg)) for _ in range(n)]
            (tmp_path / name).write_text("\n".join(rows) + "\n")
        common = ["--preset", "tiny", "--threads", "1", "--max-steps", "6"]
        commands = [["pretrain", "--train", *map(str, docs), "--out", "pre", "--set", "tokenizer.vocab_size=60"],
                    ["finetune", "--pretrained", "pre", "--train", *map(str, docs), "--out", "ft"],
                    ["classify", "--finetuned", "ft", "--train", "l.csv", "--valid", "v.csv", "--out", "cls",
                     "--set", "batch_size=16"]]
        def torchrun(command):
            try:
                return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                       "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                                       "-m", "ulmfit", *command, *common], cwd=tmp_path, capture_output=True,
                                      text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                      stdin=subprocess.DEVNULL, timeout=120)
            except subprocess.TimeoutExpired as e:
                pytest.fail(f"{command[0]} hung under torchrun: {(e.stderr or b'')[-3000:]!r}")
        for command in commands:
            proc = torchrun(command)
            assert proc.returncode == 0, proc.stderr[-3000:]
            results = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            assert len(results) == 1 and json.loads(results[0])["stage"] == command[0]   # rank 0 alone prints it
            if command[0] == "classify":
                assert json.loads(results[0])["n_train"] == 33
            assert (tmp_path / command[command.index("--out") + 1] / "model.pt").is_file()
        # a supervisor loop's next turn on the finished run: every rank learns it is finished and exits 0
        again = torchrun(commands[-1] + ["--resume"])
        assert again.returncode == 0 and "finished run" in again.stderr, again.stderr[-3000:]


class TestBf16:
    @pytest.mark.bf16
    def test_tiny_bf16_run_trains_on_cpu(self, tiny_config):
        """Under bf16 autocast on CPU, repeating one batch keeps the loss finite and lowers it."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            torch.manual_seed(0)
            model = LanguageModel(dataclasses.replace(tiny_config, emb_size=16, hidden_size=32, dropout_scale=0.0))
            cfg, run = TrainConfig(batch_size=4, bptt=8, lr=3e-2, schedule="constant", clip=0), RunConfig(precision="bf16")
            rt = Runtime(device=torch.device("cpu"), precision="bf16")
            ids, offsets = _corpus()
            task = LMTask(LMBatches(ids, offsets, 4, 8, shuffle=False, seed=0, variable_length=False), None, cfg, rt)
            batch = next(iter(task.train.iter_epoch(0, 0)))
            task.batches = lambda epoch, start: (batch for _ in range(30 - start))
            task.n_batches = lambda epoch: 30
            losses = []
            step = task.step

            def record(net, b, carry):
                result = step(net, b, None)
                losses.append(result.metric.item())
                return result
            task.step = record
            fit(model, task, [Stage("all", 1, list(range(len(model.layer_groups()))))], cfg, run, rt)
        finally:
            torch.set_num_threads(threads)
        assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0]


if __name__ == "__main__":                # one DDP rank, started by _run_two_ranks with torchrun's variables
    from ulmfit.runtime import cleanup_runtime, setup_runtime

    from ulmfit.train.resume import Interrupted

    out, mode = Path(sys.argv[1]), sys.argv[2]
    rt = setup_runtime(threads=1, device="cpu")
    result = {"interrupted": 0}
    if mode == "full":
        result["state"], result["history"] = train_ranks(rt, out / "run")
    else:                                 # stopped by SIGTERM at step 4, then resumed (in the same processes)
        try:
            train_ranks(rt, out / "resumed", signal_at=4)
        except Interrupted as e:
            result["interrupted"] = e.signum
        if rt.is_main:                    # rank 1 waits for this inside fit's first collective
            shutil.copy(out / "resumed" / "resume.pt", out / "resume-at-stop.pt")
        result["state"], result["history"] = train_ranks(rt, out / "resumed", resume=True)
    torch.save(result, out / f"rank{rt.rank}-{mode}.pt")
    cleanup_runtime()
    # The result is on disk. Skip interpreter teardown: on a loaded CPU box gloo's background thread was seen to
    # abort it ("terminate called without an active exception", exit -6) after a clean destroy_process_group.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
