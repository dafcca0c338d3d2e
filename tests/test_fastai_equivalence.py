"""ulmfit against fastai itself: imported weights give fastai's logits, exported files load into fastai.

Runs where fastai is installed (`pip install 'ulmfit[fastai]'` plus `pip install --no-deps fastai==2.8.12` and
fastai's requirements except torchvision; .ci/run does this) and skips with the reason elsewhere.
benchmarks/fastai_equivalence.py repeats these checks at the published model's vocabulary size.
"""
import pickle
import warnings

import pytest
import torch

pytest.importorskip("fastai", reason="fastai is not installed (pip install --no-deps fastai==2.8.12 + its "
                                     "requirements except torchvision)")
pd = pytest.importorskip("pandas", reason="fastai's DataLoaders need pandas")

from fastai.text.all import AWD_LSTM, TextDataLoaders, language_model_learner  # noqa: E402

from ulmfit.awd_lstm import LanguageModel  # noqa: E402
from ulmfit.fastai_interop import export_fastai  # noqa: E402
from ulmfit.fastai_tokenizer import FASTAI_SPECIALS  # noqa: E402
from ulmfit.model_zoo import import_files  # noqa: E402

VOCAB = list(FASTAI_SPECIALS) + [f"w{i}" for i in range(87)]          # 96 words: a multiple of 8, as fastai's


def fastai_learner(tmp_path, backwards=False, seed=0):
    """A fastai LM learner at the published sizes (fastai's default AWD_LSTM config: 400 / 1152 / 3 layers), random
    weights, whose DataLoaders' vocabulary is VOCAB."""
    df = pd.DataFrame({"text": ["w1 w2 w3 w4"] * 8 + ["w5 w6 w7"] * 8, "is_valid": [False] * 8 + [True] * 8})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = TextDataLoaders.from_df(df, path=tmp_path, text_col="text", is_lm=True, valid_col="is_valid",
                                      text_vocab=VOCAB, bs=4, seq_len=8, backwards=backwards)
    torch.manual_seed(seed)
    learn = language_model_learner(dls, AWD_LSTM, pretrained=False, backwards=backwards)
    learn.model.eval()
    return learn


def fastai_logits(model, ids: torch.Tensor) -> torch.Tensor:
    model.reset()
    with torch.no_grad():
        return model(ids)[0]


def ulmfit_logits(run_dir, ids: torch.Tensor) -> torch.Tensor:
    model = LanguageModel.from_pretrained(run_dir, device="cpu")
    with torch.no_grad():
        return model(ids).logits


IDS = torch.randint(0, len(VOCAB), (3, 21), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("backwards", [False, True], ids=["fwd", "bwd"])
def test_imported_model_gives_fastai_logits(tmp_path, backwards):
    learn = fastai_learner(tmp_path, backwards, seed=int(backwards))
    weights = learn.save("lm", with_opt=True)                   # fastai's own file: {'model', 'opt'}
    vocab = tmp_path / "itos.pkl"
    vocab.write_bytes(pickle.dumps(VOCAB))
    out = tmp_path / "imported"
    import_files(weights, vocab, out, "paper", backwards=backwards)
    diff = (ulmfit_logits(out, IDS) - fastai_logits(learn.model, IDS)).abs().max().item()
    assert diff <= 1e-5, diff


def test_exported_model_loads_into_fastai_with_the_same_logits(tmp_path):
    source = fastai_learner(tmp_path, seed=2)
    weights = source.save("lm", with_opt=False)
    (tmp_path / "itos.pkl").write_bytes(pickle.dumps(VOCAB))
    run = tmp_path / "run"
    import_files(weights, tmp_path / "itos.pkl", run, "paper")
    files = export_fastai(run, tmp_path / "export")
    target = fastai_learner(tmp_path, seed=3)                   # other random weights, replaced by the export
    target.load_pretrained(files["weights"], files["vocab"])
    target.model.eval()
    diff = (fastai_logits(target.model, IDS) - ulmfit_logits(run, IDS)).abs().max().item()
    assert diff <= 1e-5, diff
