"""pretrained/ layer: fastai's language models in and out: its weight files and vocabulary pickles <-> ulmfit run dirs.

ULMFiT's transfer starts from an AWD-LSTM pretrained on WikiText-103 (§3.1); fastai publishes that model as
`wt103-fwd` / `wt103-bwd` (model_zoo.py fetches them). This module turns such files into an ordinary ulmfit
`pretrain` run dir (`import_fastai`) and a run dir back into files fastai's `load_pretrained` reads
(`export_fastai`). Weights are mapped by name, never by position (fastai's own `load_ignore_keys` goes by position):

    fastai                                   ulmfit
    0.encoder.weight                         encoder.embedding.weight   (0.encoder_dp.emb.weight: the same tensor)
    0.rnns.{i}.module.weight_ih_l0           encoder.rnns.{i}.weight_ih
    0.rnns.{i}.weight_hh_l0_raw              encoder.rnns.{i}.weight_hh_raw   (fastai v1 also saved the dropped-out
    0.rnns.{i}.module.bias_ih_l0 / hh_l0     encoder.rnns.{i}.bias_ih / hh     copy module.weight_hh_l0: not kept)
    1.decoder.weight / bias                  decoder.weight / bias      (tied: the same tensor as the embedding)

The tokenizer's rules are fastai v1's for a file saved by fastai v1 (the `module.weight_hh_l0` copies are there:
wt103-fwd/bwd were trained with fastai 1.0.53), else v2's; `rules=` chooses them (fastai_tokenizer.py).

The vocabulary is a pickle (a list of str). Unpickling runs code named in the file, so it is read by an unpickler
that admits no global at all: a list of str needs none, and a file that names one is refused before anything runs.
The weights are read with `torch.load(weights_only=True)`, which admits tensors and containers only. A 2019 file
(wt103's) is torch's legacy, pre-1.6 non-zip serialization, likely saved on a GPU: its storages are tagged
"cuda:0", and `map_location="cpu"` makes torch put them in CPU memory instead of needing CUDA; shared storages and
views into cuDNN's flat LSTM buffer come back as views, fp32 stays fp32 (bit for bit), and loading into our model
copies each weight into a tensor of its own (tests/test_fastai_legacy_format.py).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import re
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..model.awd_lstm import LanguageModel
from ..config import StageConfig, TokenizerConfig, preset
from ..errors import UlmfitError
from ..text.fastai_tokenizer import FASTAI_SPECIALS, FastaiTokenizer, check_rules

# fastai's default max_vocab and min_freq: the target corpus's own vocabulary is built with them at fine-tuning
FASTAI_TOKENIZER = TokenizerConfig(vocab_size=60000, model_type="fastai", pre_rules=True, lowercase=True, min_freq=3)

_PER_LAYER = (("module.weight_ih_l0", "weight_ih"), ("weight_hh_l0_raw", "weight_hh_raw"),
              ("module.bias_ih_l0", "bias_ih"), ("module.bias_hh_l0", "bias_hh"))
_TOP = (("0.encoder.weight", "encoder.embedding.weight"), ("1.decoder.weight", "decoder.weight"),
        ("1.decoder.bias", "decoder.bias"))
_COPIES = re.compile(r"0\.encoder_dp\.emb\.weight|0\.rnns\.\d+\.module\.weight_hh_l0")   # duplicates fastai saves


# ---- the vocabulary pickle ----------------------------------------------------------------------------------
class _NoGlobals(pickle.Unpickler):
    """An unpickler that refuses every global: code in a pickle can only run through one (REDUCE, BUILD, ...)."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it names {module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("it holds a persistent reference")


def read_vocab_pickle(data: bytes, source: str) -> list[str]:
    """fastai's vocabulary (`itos`) from pickle bytes: a list of str, or one-line UlmfitError."""
    try:
        vocab = _NoGlobals(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as e:
        raise UlmfitError(f"{source} is not a plain vocabulary pickle ({e}); refused: only a list of str is "
                          "read") from None
    if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
        raise UlmfitError(f"{source} holds a {type(vocab).__name__}, not a list of str; refused")
    missing = [w for w in FASTAI_SPECIALS[:4] if w not in vocab]
    if missing or vocab[:2] != ["xxunk", "xxpad"]:
        raise UlmfitError(f"{source} is not a fastai vocabulary: it must start with xxunk, xxpad and hold "
                          f"{', '.join(FASTAI_SPECIALS[:4])} (missing: {', '.join(missing) or 'none'})")
    return vocab


def write_vocab_pickle(vocab: list[str], path: Path) -> None:
    ckpt.atomic_write_bytes(path, pickle.dumps(list(vocab), protocol=2))


# ---- the weights --------------------------------------------------------------------------------------------
def read_fastai_weights(data: bytes, source: str) -> tuple[dict[str, torch.Tensor], str]:
    """A fastai LM state dict from `.pth` bytes (a plain state dict or fastai's {'model', 'opt'} wrapper), and
    the layout it came in ("v1" when the dropped-out LSTM copies are there too, else "v2")."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, ImportError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UlmfitError(f"{source} is not a weights-only torch file ({first[:160]}); refused") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]                           # Learner.save(with_opt=True) keeps the optimiser beside
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UlmfitError(f"{source} does not hold a state dict of tensors")
    layout = "v1" if any(k.endswith(".module.weight_hh_l0") for k in state) else "v2"
    return dict(state), layout


def fastai_to_ulmfit(state: dict[str, torch.Tensor], n_layers: int, source: str) -> dict[str, torch.Tensor]:
    """fastai key names -> ours (fp32). Every key must be known; the embedding and tied decoder stay one tensor."""
    names = dict(_TOP)
    for i in range(n_layers):
        names.update({f"0.rnns.{i}.{theirs}": f"encoder.rnns.{i}.{ours}" for theirs, ours in _PER_LAYER})
    unknown = sorted(k for k in state if k not in names and not _COPIES.fullmatch(k))
    if unknown:
        raise UlmfitError(f"{source} has key {unknown[0]} (shape {tuple(state[unknown[0]].shape)}), which the "
                          f"{n_layers}-layer AWD-LSTM language model does not have")
    missing = [k for k in names if k not in state]
    if missing:
        raise UlmfitError(f"{source} has no key {missing[0]}: not a fastai AWD-LSTM language model "
                          f"with {n_layers} layers")
    out = {ours: state[theirs].float() for theirs, ours in names.items()}
    if torch.equal(out["decoder.weight"], out["encoder.embedding.weight"]):
        out["decoder.weight"] = out["encoder.embedding.weight"]
    return out


def ulmfit_to_fastai(state: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """Our LM state dict -> fastai v2's key names, as its `get_language_model(AWD_LSTM, ...)` state dict has them."""
    embedding = state["encoder.embedding.weight"]
    out = {"0.encoder.weight": embedding, "0.encoder_dp.emb.weight": embedding.clone()}
    for i in range(n_layers):
        out[f"0.rnns.{i}.weight_hh_l0_raw"] = state[f"encoder.rnns.{i}.weight_hh_raw"]
        for theirs, ours in _PER_LAYER:
            if ours != "weight_hh_raw":
                out[f"0.rnns.{i}.{theirs}"] = state[f"encoder.rnns.{i}.{ours}"]
    out["1.decoder.weight"], out["1.decoder.bias"] = state["decoder.weight"], state["decoder.bias"]
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def _check_shapes(state: dict[str, torch.Tensor], config: StageConfig, preset_name: str, source: str) -> None:
    """fastai's tensors against the shapes of `preset_name`'s model, before anything else: one line naming the
    first key that differs and both shapes."""
    with torch.device("meta"):
        expected = LanguageModel(config.model).state_dict()
    theirs_of = {ours: theirs for theirs, ours in _TOP}
    theirs_of.update({f"encoder.rnns.{i}.{ours}": f"0.rnns.{i}.{theirs}"
                      for i in range(config.model.n_layers) for theirs, ours in _PER_LAYER})
    for ours, want in expected.items():
        got = state.get(theirs_of[ours])
        if got is not None and tuple(got.shape) != tuple(want.shape):
            raise UlmfitError(f"{source}: key {theirs_of[ours]} has shape {tuple(got.shape)} but the "
                              f"{preset_name} preset (embedding {config.model.emb_size}, hidden "
                              f"{config.model.hidden_size}, {config.model.n_layers} layers, vocabulary "
                              f"{config.model.vocab_size}) needs {tuple(want.shape)}")


def _n_layers(state: dict[str, torch.Tensor]) -> int:
    layers = {int(m.group(1)) for k in state if (m := re.match(r"0\.rnns\.(\d+)\.", k))}
    return max(layers) + 1 if layers else 0


# ---- run dirs -----------------------------------------------------------------------------------------------
def import_fastai(weights: bytes, vocab: bytes, out_dir: Path | None, preset_name: str = "paper", backwards: bool = False,
                  force: bool = False, provenance: dict | None = None, sources: tuple[str, str] = ("weights",
                                                                                                   "vocabulary"),
                  rules: str | None = None) -> dict:
    """A fastai LM (weights + vocabulary pickle, as bytes) -> a `pretrain` run dir in `out_dir`.

    The architecture is `preset_name`'s (the `paper` preset, fastai's recipe, is the published model's: embedding
    400, hidden 1152, 3 layers, tied decoder with bias); the tokenizer is fastai's (spaCy + rules,
    fastai_tokenizer.py) with the file's vocabulary, so the ids ulmfit feeds the model are the ids fastai would.
    `rules` is the fastai rule set (fastai_v1 / fastai_v2); None picks it from the file's layout (v1's copies ->
    fastai_v1). Nothing is written unless every check passes; with `out_dir=None` nothing is written at all (the
    checks alone)."""
    vocab_list = read_vocab_pickle(vocab, sources[1])
    state, layout = read_fastai_weights(weights, sources[0])
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in state.values()})
    rules = check_rules(rules or ("fastai_v1" if layout == "v1" else "fastai_v2"))
    config = preset(preset_name, "pretrain")
    config = dataclasses.replace(
        config, tokenizer=dataclasses.replace(FASTAI_TOKENIZER, fastai_rules=rules),
        model=dataclasses.replace(config.model, vocab_size=len(vocab_list), pad_id=vocab_list.index("xxpad"),
                                  tie_weights=True, out_bias=True),
        train=dataclasses.replace(config.train, backwards=backwards))
    _check_shapes(state, config, preset_name, sources[0])
    n_layers = _n_layers(state)
    if n_layers != config.model.n_layers:
        raise UlmfitError(f"{sources[0]} has {n_layers} LSTM layers (keys 0.rnns.*) but the {preset_name} preset "
                          f"has {config.model.n_layers}")
    ours = fastai_to_ulmfit(state, n_layers, sources[0])
    if ours["decoder.weight"] is not ours["encoder.embedding.weight"]:
        raise UlmfitError(f"{sources[0]}: 1.decoder.weight differs from 0.encoder.weight, but the AWD-LSTM LM "
                          "ties them (tie_weights); this file is not a tied fastai language model")
    tokenizer = FastaiTokenizer(vocab_list, rules=rules)
    model = LanguageModel(config.model)
    ckpt.load_state_checked(model, ours, Path(sources[0]))
    if out_dir is None:                                  # a check only (a download before it enters the cache)
        return {"out": None, "vocab_size": len(vocab_list), "layout": layout, "dtype": dtypes, "rules": rules}
    out_dir = ckpt.prepare_out_dir(Path(out_dir), resume=False, force=force)
    record = {"format": "fastai", "layout": layout, "dtype": dtypes, "backwards": backwards, "rules": rules,
              "weights_sha256": hashlib.sha256(weights).hexdigest(),
              "vocab_sha256": hashlib.sha256(vocab).hexdigest(), "vocab_size": len(vocab_list), **(provenance or {})}
    ckpt.save_run(out_dir, model, config, "pretrain", tokenizer, {"imported": record, "results": {}})
    return {"out": str(out_dir), "vocab_size": len(vocab_list), "layout": layout, "dtype": dtypes,
            "backwards": backwards, "preset": preset_name, "rules": rules}


def export_fastai(run_dir: Path, out_dir: Path) -> dict:
    """A pretrain/finetune run dir with fastai's tokenizer -> `<out>/lm_{fwd|bwd}.pth` + `..._vocab.pkl`, the two
    files fastai's `LMLearner.load_pretrained(wgts_fname, vocab_fname)` reads."""
    _, config, state, tokenizer = ckpt.load_run(run_dir, stages=("pretrain", "finetune"))
    if getattr(tokenizer, "kind", None) != "fastai":
        raise UlmfitError(f"{run_dir} uses a SentencePiece tokenizer; fastai's language model reads fastai's word "
                          "tokens, so only a run with the fastai tokenizer (an imported model, or "
                          "--set tokenizer.model_type=fastai) can be exported")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "lm_bwd" if config.train.backwards else "lm_fwd"
    weights, vocab = out_dir / f"{name}.pth", out_dir / f"{name}_vocab.pkl"
    buffer = io.BytesIO()
    torch.save(ulmfit_to_fastai(state, config.model.n_layers), buffer)
    ckpt.atomic_write_bytes(weights, buffer.getvalue())
    write_vocab_pickle([tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)], vocab)
    return {"weights": str(weights), "vocab": str(vocab), "backwards": config.train.backwards}
