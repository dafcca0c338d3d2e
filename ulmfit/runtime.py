"""Where a run executes: device, precision, threads, seeds and (under torchrun) the process group.

Everything device-specific lives here so that the rest of the library is device-agnostic. Under
`torchrun --nproc_per_node N`, torchrun sets RANK / WORLD_SIZE / LOCAL_RANK and we join the process group:
nccl on CUDA, gloo on CPU. Only rank 0 writes files and shows progress bars; metrics are summed across ranks.
"""
from __future__ import annotations

import contextlib
import gc
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from .errors import UlmfitError


@dataclass
class Runtime:
    device: torch.device
    precision: str = "fp32"              # fp32 | bf16 | fp16
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        """Mixed precision for the forward pass; the loss is computed in fp32 by the callers."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def all_sum(self, *values: float) -> list[float]:
        """Sum numbers across ranks (identity on one process)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        """Wait for every rank (e.g. while rank 0 alone writes a file the others then read)."""
        if self.distributed:
            dist.barrier()

    def gather(self, obj) -> list:
        """Every rank's `obj` (picklable, CPU tensors), in rank order, on every rank ([obj] on one process)."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def setup_runtime(precision: str = "fp32", threads: int = 0, device: str | None = None) -> Runtime:
    """Pick the device, join torchrun's process group if there is one, and set the thread count."""
    if threads > 0:
        torch.set_num_threads(threads)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if precision == "fp16" and dev.type != "cuda":
        raise UlmfitError("--precision fp16 needs a CUDA device; use bf16 on CPU")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(device=dev, precision=precision, rank=rank, world_size=world_size)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every device); ranks derive their own seed from it."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The global RNG states as plain tensors / lists, so they load with torch.load(weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                       has_gauss, cached],
             "python": _py_state_to_lists(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _py_state_to_lists(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def cleanup_runtime() -> None:
    """Leave torchrun's process group; the barrier first, so no rank tears gloo down under another's feet."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()                      # the stages' DDP reducers hold the group: free them while it still exists
        dist.barrier()
        dist.destroy_process_group()
