"""apps/ layer (a trained classifier -> a file to serve): export to TorchScript, fp32 or int8.

In: a `classify` run dir. Out: an export dir that `exported.load` (or `torch.jit.load` and a tokenizer) serves
without ulmfit's model and training code:

    DIR/model.pt        TorchScript: token ids (B, T) int64 + lengths (B,) int64 -> probabilities (B, C) fp32
    DIR/export.json     labels, reading direction, int8 engine, source run, versions
    DIR/tokenizer.model (or fastai_vocab.json) and vocab.txt: the run's own tokenizer files
    DIR/baseline/       the run's TF-IDF + LR baseline, only where the run chose to average it in (run_report.py)

Why TorchScript rather than ONNX: torch's dynamic int8 LSTM (quantize.py, the fbgemm/x86 and qnnpack kernels
behind `--int8`) can be saved only as TorchScript, while torch's ONNX exporter has no quantized-LSTM op, so int8
in ONNX would mean onnxruntime's own, different quantizer and one more dependency. TorchScript runs the very
kernels our accuracy and speed figures were measured with, and needs nothing beyond torch. torch >= 2.10 marks
torch.jit deprecated in favour of torch.export, but torch.export holds neither the dynamic int8 LSTM nor a loop
over a dynamic number of BPT3C chunks; when it does, the export moves there (the loader hides the notice, which a
user could do nothing about).

The scripted module (`ScriptableClassifier`) is the classifier's eval-mode forward written once more in the form
TorchScript compiles: the embedding, the LSTMs as plain `nn.LSTM` (weight-drop is off in eval, AWD-LSTM §2; the
int8 ones are torch's quantized twins), BPT3C's chunks of `bptt` tokens carrying the hidden state (ULMFiT §3.3;
the same chunks as `classifier.encode_in_chunks`, so int8's per-call activation scales match too), masked
concat pooling over each document's last `max_len` tokens (eq. 4, `classifier.masked_concat_pool` itself) and
the head with BatchNorm's running statistics. tests/test_export.py checks it against `TextClassifier`.
"""
from __future__ import annotations

import copy
import datetime
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..model import quantize
from ..analysis.baseline import BASELINE_DIR
from ..model.classifier import masked_concat_pool
from ..errors import UlmfitError
from .exported import FORMAT, META_FILE, MODEL_FILE
from ..files import write_json
from ..predict import TextClassifier
from ..text.tokenizer import tokenizer_files

FORMAT_VERSION = 1


class ScriptableClassifier(nn.Module):
    """An eval-mode `TextClassifier` as one TorchScript-compilable module:
    (tokens (B, T) right-padded, lengths (B,)) -> class probabilities (B, C) in fp32."""

    def __init__(self, model: TextClassifier):
        super().__init__()
        self.embedding = copy.deepcopy(model.encoder.embedding)
        self.lstms = nn.ModuleList(
            copy.deepcopy(rnn.lstm) if isinstance(rnn, quantize.InferenceLSTM) else quantize.InferenceLSTM(rnn).lstm
            for rnn in model.encoder.rnns)
        self.head = copy.deepcopy(model.head)
        self.bptt, self.max_len = int(model.bptt), int(model.max_len)
        self.read_tokens = int(getattr(model, "read_tokens", 0))
        self.eval()

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.read_tokens > 0 and tokens.shape[1] > self.read_tokens:   # as TextClassifier.forward
            tokens = tokens[:, :self.read_tokens]
            lengths = lengths.clamp(max=self.read_tokens)
        B, T = tokens.shape
        positions = torch.arange(T, device=tokens.device).unsqueeze(0).expand(B, T)      # (B, T)
        window_start = (lengths - self.max_len).clamp(min=0).unsqueeze(1)                # (B, 1)
        mask = (positions < lengths.unsqueeze(1)) & (positions >= window_start)           # (B, T) pooled positions
        states: list[tuple[torch.Tensor, torch.Tensor]] = []
        outputs: list[torch.Tensor] = []
        for start in range(0, T, self.bptt):          # BPT3C: chunks, not time steps; the LSTM kernel loops over time
            x = self.embedding(tokens[:, start:start + self.bptt])                       # (B, <=bptt, E)
            new_states: list[tuple[torch.Tensor, torch.Tensor]] = []
            for i, lstm in enumerate(self.lstms):
                if len(states) > 0:
                    x, state = lstm(x, states[i])
                else:
                    x, state = lstm(x)
                new_states.append(state)
            states = new_states
            outputs.append(x)
        pooled = masked_concat_pool(torch.cat(outputs, dim=1), mask)                    # (B, 3E)
        return torch.softmax(self.head(pooled.float()).float(), dim=-1)                 # (B, C)


def export_classifier(run_dir: Path, out_dir: Path, int8: bool = False, baseline: bool = True) -> dict:
    """Write `run_dir`'s classifier as TorchScript (int8 LSTMs and head with `int8`) into `out_dir`.

    `baseline=False` leaves the run's TF-IDF + LR baseline out even where the run chose to average it in.
    Refuses an out_dir that exists and is not empty. Returns export.json's content plus "out"."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UlmfitError(f"{out_dir} exists and is not an empty folder; choose a new --out")
    model = TextClassifier.from_pretrained(run_dir, device="cpu", baseline=baseline, int8=int8)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)      # see the module docstring
        scripted = torch.jit.script(ScriptableClassifier(model))
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.jit.save(scripted, str(out_dir / MODEL_FILE))
    for path in [*tokenizer_files(run_dir), run_dir / "vocab.txt"]:
        if path.is_file():
            shutil.copyfile(path, out_dir / path.name)
    if model.baseline is not None:
        shutil.copytree(run_dir / BASELINE_DIR, out_dir / BASELINE_DIR)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "labels": model.label_names, "backwards": bool(model.stage_config.train.backwards),
        "int8": int8, "int8_engine": torch.backends.quantized.engine if int8 else None,
        "baseline": model.baseline is not None, "ulmfit_weight": getattr(model, "ulmfit_weight", 1.0),
        "vocab_size": model.config.vocab_size, "bptt": model.bptt, "max_len": model.max_len,
        "source": str(run_dir.resolve()), "ulmfit": __version__, "torch": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out_dir / META_FILE, meta)
    return {"out": str(out_dir), **meta}
