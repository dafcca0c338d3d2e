"""Does `ulmfit.text.fastai_tokenizer` give fastai's tokens, vocabulary and ids? And how fast is each? (issue 15)

    python benchmarks/fastai_tokenizer_agreement.py [--per-source 400] [--seed 0] [--runs 3]

Real texts of four kinds from the data mirror ($ULMFIT_MIRROR, else ../shared/data): IMDb reviews that hold
HTML (`<br />`, from the full test split), clickbait headlines, WikiText-2 lines, Rotten Tomatoes sentences.
Each is tokenised by fastai's own pipeline (`tokenize_df` with its default rules and `SpacyTokenizer`, one
process) and by ours; it prints the agreement per source (identical token lists out of N), every disagreement
(a snippet and the first differing token), whether the vocabularies (fastai's `make_vocab` vs
`FastaiTokenizer.train`, two sizes) and the ids agree, and each side's tokens/s (median of --runs, same texts,
same process, spaCy loaded before timing). Exits 1 if anything disagrees. Needs fastai (pip install fastai).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ulmfit.data import download as datasets
from ulmfit.config import TokenizerConfig
from ulmfit.text.fastai_tokenizer import FASTAI_SPECIALS, FastaiTokenizer
from ulmfit.runtime import cpu_name


def sample(texts: list[str], n: int, rng: np.random.Generator) -> list[str]:
    return [texts[i] for i in sorted(rng.choice(len(texts), size=min(n, len(texts)), replace=False))]


def load_sources(per_source: int, seed: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    imdb = [t for t in datasets.load_labelled("imdb")["test"][0] if "<br" in t]
    wiki_lines = [line for doc in datasets.load_lm_corpus("wikitext2")["train"]
                  for line in doc.split("\n") if line.strip()]
    return {"imdb (with HTML)": sample(imdb, per_source, rng),
            "clickbait": sample(datasets.load_labelled("clickbait")["test"][0], per_source, rng),
            "wikitext2 lines": sample(wiki_lines, per_source, rng),
            "rt_polarity": sample(datasets.load_labelled("rt_polarity")["test"][0], per_source, rng)}


def first_difference(a: list[str], b: list[str]) -> str:
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    show = lambda toks: toks[i] if i < len(toks) else "<end>"                       # noqa: E731
    return f"token {i}: fastai {show(a)!r} vs ours {show(b)!r} (after {a[max(0, i - 3):i]})"


def median_seconds(fns, runs: int) -> list[float]:
    """Median wall time of each of `fns`, the runs interleaved so that a load spike hits both alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, seconds in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - t0)
    return [statistics.median(seconds) for seconds in times]


def report_tokens(sources: dict[str, list[str]], expected: list[list[str]], got: list[list[str]]) -> int:
    """Print identical/N per source and every disagreement; return the number of disagreements."""
    print(f"{'source':<18} {'identical':>12}")
    failures, start = 0, 0
    for name, group in sources.items():
        pairs = list(zip(group, expected[start:start + len(group)], got[start:start + len(group)]))
        start += len(group)
        bad = [(t, a, b) for t, a, b in pairs if a != b]
        failures += len(bad)
        share = 100 * (1 - len(bad) / len(pairs))
        print(f"{name:<18} {len(pairs) - len(bad):>5} / {len(pairs):<5} ({share:.1f}%)")
        for text, a, b in bad:
            print(f"    DISAGREE {text[:70]!r}: {first_difference(a, b)}")
    return failures


def report_vocab(texts: list[str], expected: list[list[str]]) -> int:
    """fastai's make_vocab + Numericalize vs FastaiTokenizer.train + encode_documents; return mismatches."""
    from fastai.text.all import Numericalize, make_vocab
    counts = Counter(t for toks in expected for t in toks)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for max_vocab in (60000, 1000):                       # 1000 < the words seen: the cut is exercised
            want = make_vocab(counts, min_freq=3, max_vocab=max_vocab)
            mine = FastaiTokenizer.train(texts, TokenizerConfig(vocab_size=max_vocab, min_freq=3), Path(tmp))
            numericalize = Numericalize(min_freq=3, max_vocab=max_vocab)
            numericalize.setups(_Counted(counts))
            same_ids = all(numericalize(toks).tolist() == ids
                           for toks, ids in zip(expected, mine.encode_documents(texts)))
            failures += not (mine.vocab == want and same_ids)
            print(f"vocab max_vocab={max_vocab}: {len(want)} entries, vocab "
                  f"{'identical' if mine.vocab == want else 'DIFFERS'}, "
                  f"ids {'identical' if same_ids else 'DIFFER'}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-source", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("ULMFIT_MIRROR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

    import fastai
    import pandas as pd
    import spacy
    from fastai.text.all import SpacyTokenizer, tokenize_df

    sources = load_sources(args.per_source, args.seed)
    texts = [t for group in sources.values() for t in group]
    fastai_tok = SpacyTokenizer()
    ours = FastaiTokenizer(list(FASTAI_SPECIALS))           # the vocabulary plays no part in the tokens
    ours.tokenize("warm up")                                  # builds the spaCy pipeline outside the timing

    def run_fastai() -> list[list[str]]:
        frame, _ = tokenize_df(pd.DataFrame({"text": texts}), "text", n_workers=0, tok=fastai_tok)
        return [list(t) for t in frame["text"]]

    expected, got = run_fastai(), ours.tokenize_documents(texts)
    print(f"fastai {fastai.__version__}, spaCy {spacy.__version__}, numpy {np.__version__}; "
          f"CPU: {cpu_name()} ({os.cpu_count()} logical cores visible)")
    print(f"{len(texts)} texts, {sum(map(len, expected))} fastai tokens\n")
    failures = report_tokens(sources, expected, got) + report_vocab(texts, expected)

    n_tokens = sum(map(len, expected))
    t_fastai, t_ours = median_seconds([run_fastai, lambda: ours.tokenize_documents(texts)], args.runs)
    print(f"\ntokens/s (median of {args.runs}, one process): fastai {n_tokens / t_fastai:,.0f} "
          f"({t_fastai:.2f} s), ours {n_tokens / t_ours:,.0f} ({t_ours:.2f} s)")
    print("result:", "ALL AGREE" if failures == 0 else f"{failures} DISAGREEMENTS")
    return 0 if failures == 0 else 1


class _Counted(list):
    """What Numericalize.setups reads: an object with a `counter` (fastai's Datasets carry one)."""
    def __init__(self, counter: Counter):
        super().__init__()
        self.counter = counter


if __name__ == "__main__":
    sys.exit(main())
