"""ulmfit.text.fastai_tokenizer against fastai itself, live, on real texts (only where fastai is installed).

300 texts from the data mirror: IMDb sample reviews (HTML breaks and entities), clickbait headlines and
WikiText-2 lines (@-@ escapes, headings). benchmarks/fastai_tokenizer_agreement.py runs the same check on
more texts, and on the vocabulary and ids.
"""
import os
import warnings
from pathlib import Path

import pytest

pytest.importorskip("spacy", reason="the fastai tokenizer kind needs spaCy (pip install 'spacy>=3,<4')")
pytest.importorskip("fastai", reason="the agreement check runs fastai's own tokenizer (pip install fastai)")

from ulmfit.data import download as datasets  # noqa: E402
from ulmfit.text.fastai_tokenizer import FASTAI_SPECIALS, FastaiTokenizer  # noqa: E402

MIRROR = Path(os.environ.get("ULMFIT_MIRROR") or Path(__file__).parents[2] / "shared" / "data")


def first_difference(fastai_tokens: list[str], ours: list[str]) -> str:
    same = min(len(fastai_tokens), len(ours))
    i = next((k for k, (a, b) in enumerate(zip(fastai_tokens, ours)) if a != b), same)
    return f"token {i}: fastai {fastai_tokens[i:i + 3]} vs ours {ours[i:i + 3]}"


@pytest.fixture
def texts(tmp_path, monkeypatch) -> list[str]:
    if not (MIRROR / "wikitext2").is_dir():
        pytest.skip(f"no data mirror at {MIRROR}")
    monkeypatch.setenv("ULMFIT_MIRROR", str(MIRROR))
    monkeypatch.setenv("ULMFIT_CACHE", str(tmp_path / "cache"))
    imdb = datasets.load_labelled("imdb_sample")["test"][0][:100]
    clickbait = datasets.load_labelled("clickbait")["test"][0][:100]
    article = datasets.load_lm_corpus("wikitext2")["valid"][0]
    wiki = [line for line in article.split("\n") if line.strip()][:100]
    return imdb + clickbait + wiki


def test_same_tokens_as_fastai(texts):
    """fastai's tokenize_df (default rules, SpacyTokenizer) and ours give identical token lists."""
    import pandas as pd
    with warnings.catch_warnings():          # fastai's imports warn about torch.jit and pandas deprecations
        warnings.simplefilter("ignore")
        from fastai.text.all import tokenize_df

    frame, _ = tokenize_df(pd.DataFrame({"text": texts}), "text", n_workers=0)
    expected = [list(tokens) for tokens in frame["text"]]
    got = FastaiTokenizer(list(FASTAI_SPECIALS)).tokenize_documents(texts)
    disagreements = [f"{text[:60]!r}: {first_difference(a, b)}"
                     for text, a, b in zip(texts, expected, got) if a != b]
    assert not disagreements, f"{len(disagreements)} of {len(texts)} differ:\n" + "\n".join(disagreements)
