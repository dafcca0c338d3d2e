"""A 2019 fastai v1 `Learner.save` file in torch's legacy (pre-1.6, non-zip) serialization, imported bit-exactly.

The file is made here, at the tiny preset's size, the way fastai 1.0.53 made one: `torch.save({'model':
model.state_dict(), 'opt': optimizer.state_dict()})` (basic_train.py, with_opt=True) under a torch that wrote the
legacy format (`_use_new_zipfile_serialization=False` writes it today). The state dict is a real
`nn.Module.state_dict()` of modules named as fastai v1's AWD-LSTM LM, so it carries what such a file carries:
  - `_metadata` (the module versions, an attribute of the OrderedDict);
  - shared storages: the tied decoder and `encoder_dp.emb` are the embedding's very tensor;
  - offset views: each LSTM's weights are views into one flat buffer, as cuDNN's flatten_parameters leaves them;
  - fp32 tensors holding fp16-rounded values (fastai trained wt103 in mixed precision, fp32 master weights);
  - v1's `module.weight_hh_l0`: the dropped-out copy of `weight_hh_l0_raw` (it lives in the flat buffer).
A 2019 file saved on a GPU tags its storages "cuda:0". A CPU machine cannot make CUDA storages, but the tag is only
a string in the file: `cuda_tagged` writes it through torch's own tagger registry, and the tests show that torch
refuses such a file on a machine without CUDA unless map_location says where to put it, and that the importer
(`torch.load(map_location="cpu", weights_only=True)`) reads it, values bit for bit.
"""
import contextlib
import io
import pickle
from collections import OrderedDict

import pytest
import torch
from torch import nn

from tests.test_fastai_interop import VOCAB
from ulmfit import checkpoint as ckpt
from ulmfit.config import preset
from ulmfit.pretrained.fastai_interop import import_fastai, read_fastai_weights

ZIP_MAGIC = b"PK\x03\x04"


def fp16_rounded(*shape, g) -> torch.Tensor:
    return torch.randn(*shape, generator=g).half().float()


def fastai_v1_lm(seed=0) -> nn.Module:
    """Modules named as fastai v1's `SequentialRNN(AWD_LSTM, LinearDecoder)`, holding fp16-rounded fp32 weights."""
    m = preset("tiny", "pretrain").model
    g = torch.Generator().manual_seed(seed)
    awd = nn.Module()
    awd.encoder = nn.Embedding(len(VOCAB), m.emb_size, padding_idx=1)
    awd.encoder.weight.data = fp16_rounded(len(VOCAB), m.emb_size, g=g)
    awd.encoder_dp = nn.Module()
    awd.encoder_dp.emb = awd.encoder                   # EmbeddingDropout(self.encoder): the same module
    awd.rnns = nn.ModuleList()
    sizes = [m.emb_size] + [m.hidden_size] * (m.n_layers - 1) + [m.emb_size]
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        lstm = nn.LSTM(n_in, n_out, batch_first=True)
        shapes = OrderedDict(weight_ih_l0=(4 * n_out, n_in), weight_hh_l0=(4 * n_out, n_out),
                             bias_ih_l0=(4 * n_out,), bias_hh_l0=(4 * n_out,))
        flat = fp16_rounded(sum(torch.Size(s).numel() for s in shapes.values()), g=g)
        offset = 0
        for name, shape in shapes.items():             # cuDNN's one flat buffer, each weight a view into it
            n = torch.Size(shape).numel()
            lstm._parameters[name] = nn.Parameter(flat[offset:offset + n].view(shape))
            offset += n
        wd = nn.Module()                               # fastai v1's WeightDropout(lstm, weight_p)
        wd.module = lstm
        wd.weight_hh_l0_raw = nn.Parameter(fp16_rounded(4 * n_out, n_out, g=g))
        with torch.no_grad():                          # what training left in module.weight_hh_l0: a dropout of raw
            mask = (torch.rand(4 * n_out, n_out, generator=g) > 0.2).float()
            lstm.weight_hh_l0.copy_(wd.weight_hh_l0_raw * mask / 0.8)
        awd.rnns.append(wd)
    dec = nn.Module()
    dec.decoder = nn.Linear(m.emb_size, len(VOCAB))
    dec.decoder.weight = awd.encoder.weight            # tie_weights
    dec.decoder.bias.data = fp16_rounded(len(VOCAB), g=g)
    return nn.Sequential(awd, dec)


def learner_save(model: nn.Module) -> dict:
    """fastai 1.0.53's Learner.save(with_opt=True) payload: the state dict and the optimiser's (Adam, betas 0.8)."""
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.8, 0.99), eps=1e-5)
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    return {"model": model.state_dict(), "opt": opt.state_dict()}


def legacy_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


@contextlib.contextmanager
def cuda_tagged():
    """Storages saved inside this block are tagged "cuda:0", as a GPU's are (torch's tagger registry, first place)."""
    entry = (-1, lambda storage: "cuda:0", lambda storage, location: None)
    torch.serialization._package_registry.insert(0, entry)
    try:
        yield
    finally:
        torch.serialization._package_registry.remove(entry)


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


def assert_imported_bit_exactly(run_dir, model):
    _, _, ours, tok = ckpt.load_run(run_dir)
    theirs = model.state_dict()
    pairs = [("encoder.embedding.weight", "0.encoder.weight"), ("decoder.weight", "1.decoder.weight"),
             ("decoder.bias", "1.decoder.bias")]
    for i in range(len(model[0].rnns)):
        pairs += [(f"encoder.rnns.{i}.weight_ih", f"0.rnns.{i}.module.weight_ih_l0"),
                  (f"encoder.rnns.{i}.weight_hh_raw", f"0.rnns.{i}.weight_hh_l0_raw"),   # raw, not the dropped copy
                  (f"encoder.rnns.{i}.bias_ih", f"0.rnns.{i}.module.bias_ih_l0"),
                  (f"encoder.rnns.{i}.bias_hh", f"0.rnns.{i}.module.bias_hh_l0")]
    for o, t in pairs:
        assert ours[o].dtype == torch.float32 and torch.equal(bits(ours[o]), bits(theirs[t])), o
    assert tok.rules == "fastai_v1"                    # a v1 file: v1's tokenization


@pytest.fixture(scope="module")
def model():
    return fastai_v1_lm()


def test_the_file_is_legacy_format_with_what_2019_files_hold(model):
    """The fixture is what it claims: pickle protocol 2, no zip; _metadata, shared storages, offset views."""
    data = legacy_bytes(learner_save(model))
    assert data[:2] == b"\x80\x02" and not data.startswith(ZIP_MAGIC)
    loaded = torch.load(io.BytesIO(data), weights_only=True)
    state = loaded["model"]
    assert hasattr(state, "_metadata") and "0.rnns.0.module" in state._metadata
    assert state["1.decoder.weight"].data_ptr() == state["0.encoder.weight"].data_ptr() \
        == state["0.encoder_dp.emb.weight"].data_ptr()
    assert state["0.rnns.0.module.bias_ih_l0"].storage_offset() > 0
    assert state["0.rnns.0.module.bias_ih_l0"].untyped_storage().data_ptr() \
        == state["0.rnns.0.module.weight_ih_l0"].untyped_storage().data_ptr()
    assert torch.equal(state["0.encoder.weight"].half().float(), state["0.encoder.weight"])   # fp16-rounded
    assert not torch.equal(state["0.rnns.0.module.weight_hh_l0"], state["0.rnns.0.weight_hh_l0_raw"])


@pytest.mark.parametrize("with_opt", [True, False])
def test_legacy_file_imports_bit_exactly(tmp_path, model, with_opt):
    payload = learner_save(model) if with_opt else model.state_dict()
    out = tmp_path / "lm"
    result = import_fastai(legacy_bytes(payload), pickle.dumps(VOCAB, protocol=2), out, "tiny")
    assert result["layout"] == "v1" and result["dtype"] == ["float32"]
    assert_imported_bit_exactly(out, model)


def test_saved_run_keeps_no_flat_buffer_or_dropped_copy(tmp_path, model):
    """The views into fastai's flat buffers become tensors of their own: model.pt holds each weight once, the
    decoder tied to the embedding, and no storage bigger than its tensor (no dropped-out copy riding along)."""
    out = tmp_path / "lm"
    import_fastai(legacy_bytes(learner_save(model)), pickle.dumps(VOCAB, protocol=2), out, "tiny")
    saved = torch.load(out / ckpt.WEIGHTS_FILE, map_location="cpu", weights_only=True)
    assert all(t.untyped_storage().nbytes() == t.numel() * 4 for t in saved.values())
    assert saved["decoder.weight"].data_ptr() == saved["encoder.embedding.weight"].data_ptr()


def test_cuda_tagged_legacy_file_needs_map_location_and_imports_on_cpu(tmp_path, model):
    with cuda_tagged():
        data = legacy_bytes(learner_save(model))
    assert b"cuda:0" in data                           # the storages say where they lived
    if not torch.cuda.is_available():                  # without map_location torch would put them on a GPU
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(io.BytesIO(data), weights_only=True)
    state, layout = read_fastai_weights(data, "lstm_fwd.pth")
    assert layout == "v1" and all(t.device.type == "cpu" for t in state.values())
    out = tmp_path / "lm"
    import_fastai(data, pickle.dumps(VOCAB, protocol=2), out, "tiny")
    assert_imported_bit_exactly(out, model)
