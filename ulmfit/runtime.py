"""Base layer: where a run executes: device, precision, threads, seeds and (under torchrun) the process group.

Everything device-specific lives here so that the rest of the library is device-agnostic, including what the
machine can run: `precision_problem` says why a precision cannot run on a device (bf16 on a CPU whose oneDNN has
no bf16 LSTM, e.g. AVX2-only CPUs; fp16 off CUDA), and `setup_runtime` refuses such a request in one line. Under
`torchrun --nproc_per_node N`, torchrun sets RANK / WORLD_SIZE / LOCAL_RANK and we join the process group:
nccl on CUDA, gloo on CPU. Only rank 0 writes files and shows progress bars; metrics are summed across ranks.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import platform
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

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
    problem = precision_problem(precision, dev)
    if problem:
        raise UlmfitError(f"--precision {precision} is not available: {problem}")
    if precision == "bf16" and dev.type == "cpu" and bf16_is_emulated():
        warnings.warn(f"--precision bf16 on this CPU ({cpu_name()}: AVX-512 without avx512_bf16 or AMX) is "
                      "emulated by oneDNN, about 3x slower than fp32 (benchmarks/lm_throughput.py); use fp32",
                      stacklevel=2)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(device=dev, precision=precision, rank=rank, world_size=world_size)


# Set to 1 to make this process behave as if bf16 were missing (tests of the no-bf16 path on a bf16 machine).
DISABLE_BF16_ENV = "ULMFIT_DISABLE_BF16"


def precision_problem(precision: str, device: torch.device | str = "cpu") -> str | None:
    """Why `precision` cannot run on `device`, in a few words, or None when it can."""
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "fp16":
        return None if device.type == "cuda" else "fp16 needs a CUDA device (on a CPU use fp32, or bf16 where it runs)"
    if precision != "bf16":
        return f"unknown precision {precision!r} (choose fp32, bf16 or fp16)"
    if os.environ.get(DISABLE_BF16_ENV, "") not in ("", "0"):
        return f"bf16 is switched off by {DISABLE_BF16_ENV}={os.environ[DISABLE_BF16_ENV]}"
    if device.type == "cuda":
        return None if torch.cuda.is_bf16_supported() else f"{torch.cuda.get_device_name(device)} has no bf16"
    if device.type == "cpu":
        return _cpu_bf16_problem()
    return f"bf16 is not supported on {device.type} devices here"


@functools.lru_cache(maxsize=None)
def _cpu_bf16_problem() -> str | None:
    # oneDNN's own flag first (it wants AVX-512 BW/VL/DQ at least), then a real bf16 LSTM step: on some CPUs the
    # flag is not the whole story and the LSTM primitive still cannot be created.
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN, which the CPU bf16 LSTM needs"
    capped = f", capped by ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']}" if os.environ.get(
        "ONEDNN_MAX_CPU_ISA") else ""
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return f"this CPU ({cpu_name()}{capped}) has no bf16 support in oneDNN (it needs AVX-512 or AMX; use fp32)"
    try:
        lstm = torch.nn.LSTM(8, 8, batch_first=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(torch.randn(2, 3, 8))
        out.float().sum().backward()
    except RuntimeError as e:
        return f"oneDNN cannot build a bf16 LSTM on this CPU ({cpu_name()}{capped}): {str(e).splitlines()[0][:120]}"
    return None


def cpu_name() -> str:
    """The CPU's model name (as lscpu prints it), or the platform's machine type where /proc/cpuinfo has none."""
    import platform
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> list[str]:
    """The instruction-set flags that decide which kernels run: AVX2, AVX-512 (bf16, VNNI), AVX-VNNI, AMX, NEON."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile",
              "asimd", "sve", "bf16")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("flags", "Features"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []



def bf16_is_emulated() -> bool:
    """AVX-512 but no native bf16 (no avx512_bf16, no AMX; e.g. Ice Lake, Cascade Lake): oneDNN runs bf16 by
    converting to fp32 and back, a third of fp32's speed in training and inference (issue 30, class 9)."""
    flags = cpu_flags()
    return "avx512f" in flags and not any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def has_int8_dot() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8), where oneDNN's int8
    matrix products beat fbgemm's (quantize.py)."""
    return any(flag in cpu_flags() for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))

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


# torch's quantized engines worth running on each CPU family, best first (qnnpack also builds on x86, but is far
# slower there). One order for quantizing (model/quantize.py) and for loading an int8 export (apps/exported.py).
INT8_ENGINES = {"x86": ("x86", "fbgemm"), "arm": ("qnnpack",)}


def cpu_family() -> str:
    """"x86", "arm", or the machine name of another CPU (for which torch has no int8 kernels)."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i386", "i686"):
        return "x86"
    return "arm" if machine.startswith(("arm", "aarch64")) else machine or "unknown"


def int8_engines(family: str) -> tuple[str, ...]:
    """The engines to try on a CPU `family`, best first: INT8_ENGINES', with oneDNN ahead on an x86 CPU with int8
    dot products (its int8 products beat fbgemm's there); () for a family without int8 kernels."""
    engines = INT8_ENGINES.get(family, ())
    return ("onednn", *engines) if family == "x86" and has_int8_dot() else engines
