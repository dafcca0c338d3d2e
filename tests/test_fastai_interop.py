"""fastai weights and vocabulary pickles in and out (fastai_interop.py), without fastai installed.

The fastai key names below are literal: they are the state_dict keys of fastai 2.8.12's
`get_language_model(AWD_LSTM, vocab_sz, config=...)` (read from the installed package; fastai v1 files also hold
`0.rnns.{i}.module.weight_hh_l0`). tests/test_fastai_equivalence.py checks the same against fastai itself.
"""
import dataclasses
import io
import pickle
from pathlib import Path

import pytest
import torch

from ulmfit import checkpoint as ckpt
from ulmfit.cli import main
from ulmfit.config import preset
from ulmfit.errors import UlmfitError
from ulmfit.pretrained.fastai_interop import export_fastai, import_fastai, read_vocab_pickle
from ulmfit.text.fastai_tokenizer import FASTAI_SPECIALS

VOCAB = list(FASTAI_SPECIALS) + ["the", "a", "film", "great", "bad", ".", ",", "is", "it", "was", "movie", "xxfake"]


def fastai_state(preset_name="tiny", vocab_size=len(VOCAB), layout="v2", seed=0, dtype=torch.float32) -> dict:
    """Random weights under fastai's key names for `preset_name`'s sizes (the last layer's output is the embedding
    size, as AWD-LSTM's is when the decoder is tied)."""
    m = preset(preset_name, "pretrain").model
    g = torch.Generator().manual_seed(seed)
    sizes = [m.emb_size] + [m.hidden_size] * (m.n_layers - 1) + [m.emb_size]
    emb = torch.randn(vocab_size, m.emb_size, generator=g)
    state = {"0.encoder.weight": emb, "0.encoder_dp.emb.weight": emb.clone()}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        state[f"0.rnns.{i}.weight_hh_l0_raw"] = torch.randn(4 * n_out, n_out, generator=g)
        state[f"0.rnns.{i}.module.weight_ih_l0"] = torch.randn(4 * n_out, n_in, generator=g)
        state[f"0.rnns.{i}.module.bias_ih_l0"] = torch.randn(4 * n_out, generator=g)
        state[f"0.rnns.{i}.module.bias_hh_l0"] = torch.randn(4 * n_out, generator=g)
        if layout == "v1":
            state[f"0.rnns.{i}.module.weight_hh_l0"] = torch.randn(4 * n_out, n_out, generator=g)
    state["1.decoder.weight"] = emb
    state["1.decoder.bias"] = torch.randn(vocab_size, generator=g)
    return {k: v.to(dtype) for k, v in state.items()}


def as_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def vocab_bytes(vocab=VOCAB) -> bytes:
    return pickle.dumps(vocab, protocol=2)


def imported(tmp_path, state=None, **kw) -> Path:
    out = tmp_path / "lm"
    import_fastai(as_bytes(state if state is not None else fastai_state()), vocab_bytes(), out, "tiny", **kw)
    return out


# ---- the key mapping -----------------------------------------------------------------------------------------
EXPECTED = [("0.encoder.weight", "encoder.embedding.weight"), ("1.decoder.weight", "decoder.weight"),
            ("1.decoder.bias", "decoder.bias")] + [
    (f"0.rnns.{i}.{theirs}", f"encoder.rnns.{i}.{ours}") for i in range(2)
    for theirs, ours in [("module.weight_ih_l0", "weight_ih"), ("weight_hh_l0_raw", "weight_hh_raw"),
                         ("module.bias_ih_l0", "bias_ih"), ("module.bias_hh_l0", "bias_hh")]]


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_every_tensor_lands_under_its_name(tmp_path, layout):
    state = fastai_state(layout=layout)
    _, _, ours, _ = ckpt.load_run(imported(tmp_path, state))
    for theirs, mine in EXPECTED:
        assert torch.equal(ours[mine], state[theirs]), (theirs, mine)


def test_key_order_does_not_matter(tmp_path):
    """Mapped by name, never by position: the same file with its keys in reverse order imports the same."""
    state = fastai_state()
    reversed_state = dict(reversed(list(state.items())))
    a = ckpt.load_run(imported(tmp_path / "a", state))[2]
    b = ckpt.load_run(imported(tmp_path / "b", reversed_state))[2]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fp16_file_becomes_fp32(tmp_path):
    state = fastai_state(dtype=torch.float16)
    out = imported(tmp_path, state)
    _, _, ours, _ = ckpt.load_run(out)
    assert ours["encoder.embedding.weight"].dtype == torch.float32
    assert torch.equal(ours["encoder.embedding.weight"], state["0.encoder.weight"].float())
    assert ckpt.read_json(out / "config.json")["imported"]["dtype"] == ["float16"]


def test_learner_save_wrapper_is_unwrapped(tmp_path):
    state = fastai_state()
    out = tmp_path / "lm"
    import_fastai(as_bytes({"model": state, "opt": {"state": {}}}), vocab_bytes(), out, "tiny")
    assert torch.equal(ckpt.load_run(out)[2]["decoder.bias"], state["1.decoder.bias"])


def test_run_dir_uses_fastai_ids(tmp_path):
    """The imported run keeps fastai's vocabulary and id layout: xxunk=0, xxpad=1 (the embedding's padding row)."""
    _, config, _, tokenizer = ckpt.load_run(imported(tmp_path))
    assert [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)] == VOCAB
    assert config.model.pad_id == 1 and config.tokenizer.model_type == "fastai"


def test_backwards_is_recorded(tmp_path):
    _, config, _, _ = ckpt.load_run(imported(tmp_path, backwards=True))
    assert config.train.backwards is True


# ---- files that do not fit: one line, nothing written -----------------------------------------------------------
def test_wrong_shape_names_key_and_shapes(tmp_path):
    state = fastai_state()
    state["0.rnns.1.module.weight_ih_l0"] = torch.zeros(4 * 32, 65)
    with pytest.raises(UlmfitError) as e:
        imported(tmp_path, state)
    msg = str(e.value)
    assert "0.rnns.1.module.weight_ih_l0" in msg and "(128, 65)" in msg and "(128, 64)" in msg and "\n" not in msg
    assert not (tmp_path / "lm").exists()


def test_paper_preset_refuses_a_smaller_model(tmp_path):
    """The default `paper` preset is the published model's size: a tiny file is refused, naming a key."""
    with pytest.raises(UlmfitError, match=r"key 0\.\S+ has shape .* the paper preset"):
        import_fastai(as_bytes(fastai_state()), vocab_bytes(), tmp_path / "lm")


def test_unknown_key_is_named(tmp_path):
    state = {**fastai_state(), "2.layers.0.weight": torch.zeros(3)}
    with pytest.raises(UlmfitError, match=r"2\.layers\.0\.weight"):
        imported(tmp_path, state)


def test_vocab_size_mismatch(tmp_path):
    with pytest.raises(UlmfitError, match=r"0\.encoder\.weight has shape \(30, 32\)"):
        imported(tmp_path, fastai_state(vocab_size=30))


def test_untied_decoder_refused(tmp_path):
    state = fastai_state()
    state["1.decoder.weight"] = state["1.decoder.weight"] + 1
    with pytest.raises(UlmfitError, match="1.decoder.weight differs"):
        imported(tmp_path, state)


def test_pickled_code_in_weights_refused(tmp_path):
    """A .pth carrying arbitrary objects is refused by torch's weights-only loader: one line."""
    with pytest.raises(UlmfitError, match="not a weights-only torch file"):
        import_fastai(as_bytes({"model": fastai_state(), "x": Path("/")}), vocab_bytes(), tmp_path / "lm", "tiny")


# ---- the vocabulary pickle ------------------------------------------------------------------------------------
class _Payload:
    """Unpickling this calls Path.touch(target): the file appears only if the payload ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_malicious_pickle_never_runs(tmp_path):
    target = tmp_path / "pwned"
    evil = pickle.dumps(["xxunk", "xxpad", _Payload(target)])
    with pytest.raises(UlmfitError, match="not a plain vocabulary pickle") as e:
        read_vocab_pickle(evil, "itos.pkl")
    assert "\n" not in str(e.value) and not target.exists()
    pickle.loads(evil)                     # the same bytes with the ordinary unpickler do run it:
    assert target.exists()                 # the test's payload is real


def test_pickle_of_other_type_refused():
    with pytest.raises(UlmfitError, match="holds a dict"):
        read_vocab_pickle(pickle.dumps({"xxunk": 0}), "v.pkl")


def test_pickle_without_specials_refused():
    with pytest.raises(UlmfitError, match="not a fastai vocabulary"):
        read_vocab_pickle(pickle.dumps(["the", "a"]), "v.pkl")


def test_cli_malicious_pickle_exit_2_nothing_written(tmp_path, capsys):
    target, out = tmp_path / "pwned", tmp_path / "lm"
    (tmp_path / "w.pth").write_bytes(as_bytes(fastai_state()))
    (tmp_path / "v.pkl").write_bytes(pickle.dumps(["xxunk", "xxpad", _Payload(target)]))
    code = main(["lm", "import", "--fastai", str(tmp_path / "w.pth"), str(tmp_path / "v.pkl"), "--preset", "tiny",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("ulmfit: error:")
    assert not target.exists() and not out.exists()


# ---- back to fastai ---------------------------------------------------------------------------------------------
def test_export_writes_fastai_names_and_vocab(tmp_path):
    state = fastai_state()
    files = export_fastai(imported(tmp_path, state), tmp_path / "out")
    written = torch.load(files["weights"], weights_only=True)
    assert set(written) == set(state)                       # fastai v2's keys exactly, encoder_dp copy included
    assert all(torch.equal(written[k], state[k]) for k in state)
    assert read_vocab_pickle(Path(files["vocab"]).read_bytes(), "v") == VOCAB


def test_export_import_round_trip(tmp_path):
    first = imported(tmp_path, backwards=True)
    files = export_fastai(first, tmp_path / "out")
    assert Path(files["weights"]).name == "lm_bwd.pth"
    second = tmp_path / "again"
    import_fastai(Path(files["weights"]).read_bytes(), Path(files["vocab"]).read_bytes(), second, "tiny",
                  backwards=True)
    a, b = ckpt.load_run(first)[2], ckpt.load_run(second)[2]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.filterwarnings("ignore:the corpus only supports")
def test_export_refuses_sentencepiece_run(tmp_path):
    from ulmfit.data.dataspec import DataSpec
    from ulmfit.pipeline import pretrain
    cfg = preset("tiny", "pretrain")
    cfg = dataclasses.replace(cfg, tokenizer=dataclasses.replace(cfg.tokenizer, vocab_size=60),
                              run=dataclasses.replace(cfg.run, max_steps=2))
    pretrain(cfg, DataSpec.from_texts(train=["the film is great ."] * 40, valid=["a bad film ."] * 4),
             tmp_path / "sp")
    with pytest.raises(UlmfitError, match="SentencePiece tokenizer"):
        export_fastai(tmp_path / "sp", tmp_path / "out")
