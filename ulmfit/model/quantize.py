"""model/ layer, last file (a trained model -> a faster one for inference): int8 dynamic quantization on the CPU.

In: a trained TextClassifier or LanguageModel in fp32, in eval mode. Out: the same model object, eval-only, whose
LSTM layers and Linear layers (the classifier head, the LM decoder) hold int8 weights; the embedding stays fp32.
Forward, `predict_proba`, `predict` and `inference.generate` work as before.

"Dynamic" quantization (torch's `torch.ao.quantization.quantize_dynamic`; Jacob et al. 2018 for the int8 scheme):
weights are quantized once, here, to int8 with one scale per output row (`per_channel_dynamic_qconfig`: the four
gates of an LSTM row block differ in scale); activations are quantized on the fly, per tensor, at each matrix
product, and everything between the products (gates, cell state, pooling, BatchNorm, softmax) stays fp32. So no
calibration data is needed and the cost is a small rounding error in the probabilities (tests/test_quantize.py).

torch quantizes `nn.LSTM`, not our `WeightDropLSTM`, so each layer is first copied into its eval-mode twin: a plain
`nn.LSTM` with weight_hh = weight_hh_raw (weight-drop is off in eval, AWD-LSTM §2) and the same gate order
(i, f, g, o), behind the encoder's call signature (`InferenceLSTM`).

The kernels are torch's quantized engines: "x86" (torch's default on x86 CPUs since 2.0, over fbgemm and oneDNN)
or "fbgemm" on x86 CPUs with AVX2, "qnnpack" on ARM. On an x86 CPU with VNNI instructions (int8 dot products:
AVX512-VNNI, AVX-VNNI, AMX) "onednn" comes first: its int8 products ran the paper-sized classifier 1.17x faster
than "x86" on a Cascade Lake Xeon (benchmarks/results/vs_fastai.txt), while on AVX2 alone fbgemm is the engine
tuned for it (capped to AVX2, onednn int8 ran 3x slower than fbgemm). Where none fits the CPU, `int8_engine`
refuses in one line; there is no silent fallback to fp32. The engine is process-wide in torch
(`torch.backends.quantized.engine`), and weights packed for one engine
run only on it, so quantizing sets it.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from ..errors import UlmfitError
from .regularizers import WeightDropLSTM
from ..runtime import INT8_ENGINES, cpu_family, int8_engines

def int8_engine(wanted: str | None = None) -> str:
    """The quantized engine for this CPU (or `wanted`, if torch offers it here), or a UlmfitError naming why there
    is none.

    torch lists fbgemm and x86 in `supported_engines` only where fbgemm finds AVX2 (ATen's Context.cpp)."""
    family = cpu_family()
    supported = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if wanted is not None:
        if wanted not in supported:
            raise UlmfitError(f"the {wanted} int8 engine is not available here; this torch offers: "
                              f"{', '.join(supported) or 'none'}")
        return wanted
    if family not in INT8_ENGINES:
        raise UlmfitError(f"int8 is not available: torch has int8 kernels for x86 and ARM CPUs only, and this one is "
                          f"{family}; use fp32")
    for engine in int8_engines(family):
        if engine in supported:
            return engine
    needs = " (they need AVX2)" if family == "x86" else ""
    raise UlmfitError(f"int8 is not available: torch offers no {' or '.join(INT8_ENGINES[family])} engine on this "
                      f"{family} CPU{needs}, only: {', '.join(supported) or 'none'}; use fp32")


def check_int8_runtime(device: torch.device | str, precision: str = "fp32") -> None:
    """Refuse, in one line, what an int8 model cannot run on: a GPU (torch's dynamic int8 kernels are CPU-only)
    or bf16/fp16 (int8 products with fp32 between them is the whole scheme; there is no mixed form)."""
    if torch.device(device).type != "cpu":
        raise UlmfitError(f"int8 runs on the CPU only (torch's dynamic quantization has no {torch.device(device).type} "
                          "kernels); use device='cpu'")
    if precision != "fp32":
        raise UlmfitError(f"int8 cannot be combined with --precision {precision}: an int8 model runs fp32 between "
                          "its int8 matrix products; use one or the other")


def int8_device(device: torch.device | str | None = None) -> torch.device:
    """The device an int8 model loads on: the CPU unless told otherwise, refused (a GPU, no engine) up front."""
    device = torch.device(device or "cpu")
    check_int8_runtime(device)
    int8_engine()
    return device


class InferenceLSTM(nn.Module):
    """A `WeightDropLSTM`'s eval-mode twin: the same weights in a plain `nn.LSTM` (which torch can quantize), called
    like the original, (x (B, T, I), (h, c) each (1, B, H)) -> (B, T, H), (h, c)."""

    def __init__(self, rnn: WeightDropLSTM):
        super().__init__()
        self.lstm = nn.LSTM(rnn.input_size, rnn.hidden_size, batch_first=True)
        with torch.no_grad():
            for name, source in (("weight_ih_l0", rnn.weight_ih), ("weight_hh_l0", rnn.weight_hh_raw),
                                 ("bias_ih_l0", rnn.bias_ih), ("bias_hh_l0", rnn.bias_hh)):
                getattr(self.lstm, name).copy_(source)

    def forward(self, x, hidden, generator=None):
        return self.lstm(x, hidden)                 # `generator` only ever fed weight-drop, which is off in eval


def _refuse_training(model: nn.Module, _inputs) -> None:
    # a forward pre-hook: int8 weights have no gradient, so a training step would silently leave the LSTMs and
    # Linear layers as they are
    if model.training:
        raise UlmfitError("this model is quantized to int8, which is for inference only; "
                          "load it without int8=True to train it")


def _quantize(model: nn.Module, engine: str | None = None) -> nn.Module:
    engine = int8_engine(engine)
    check_int8_runtime(next(model.parameters()).device)
    torch.backends.quantized.engine = engine
    model.eval()
    model.encoder.rnns = nn.ModuleList(InferenceLSTM(rnn) for rnn in model.encoder.rnns)
    with warnings.catch_warnings():
        # torch >= 2.10 marks torch.ao.quantization, and the quantize_per_tensor it calls, deprecated in favour of
        # the separate torchao package (pytorch/ao#2259). The API works on the torch we pin; the notices would
        # only alarm a user of --int8, who can do nothing about them.
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor, torch.quantize_per_channel", UserWarning)
        quantize_dynamic(model, {nn.LSTM: per_channel_dynamic_qconfig, nn.Linear: per_channel_dynamic_qconfig},
                         dtype=torch.qint8, inplace=True)
    model.int8 = True
    model.register_forward_pre_hook(_refuse_training)
    return model


def quantize_classifier(model: nn.Module, engine: str | None = None) -> nn.Module:
    """Quantize a TextClassifier's LSTMs and head Linear layers to int8, in place (like `.eval()`), and return it.

    `engine` overrides `int8_engine()`'s choice (benchmarks compare them). The model becomes eval-only: a forward in
    training mode raises a UlmfitError."""
    return _quantize(model, engine)


def quantize_language_model(model: nn.Module, engine: str | None = None) -> nn.Module:
    """Quantize a LanguageModel's LSTMs and its decoder to int8, in place, and return it (for `generate`).

    The decoder gets its own int8 copy of the weight it shares with the embedding (AWD-LSTM §4.4's tying matters
    for training only); the embedding stays fp32. Eval-only, as `quantize_classifier`."""
    return _quantize(model, engine)
