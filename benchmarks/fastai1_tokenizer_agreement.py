"""The `fastai_v1` rule set against fastai 1.0.53's own tokens, and how far v2's rules are from them (issue 29).

    python benchmarks/fastai1_tokenizer_agreement.py [--runs 3] [--fixture FILE]

Reads tests/fixtures/fastai1_tokens.json.gz (real texts and the tokens fastai 1.0.53 gave them; made by
benchmarks/fastai1_fixtures.py), tokenises every text with ulmfit's fastai_v1 and fastai_v2 rule sets and prints,
per source: identical token lists out of N for each; per v1 rule: in how many texts it changes anything (so every
rule is seen to be exercised); each side's tokens/s. Exits 1 if fastai_v1 disagrees anywhere. Needs spaCy only.
"""
from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

import spacy

from ulmfit.text.fastai_rules import V1_POST_RULES, V1_PRE_RULES  # noqa: E402
from ulmfit.text.fastai_tokenizer import FASTAI_SPECIALS, FastaiTokenizer, _blank_english  # noqa: E402

FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "fastai1_tokens.json.gz"


def rule_hits(texts: list[str]) -> dict[str, int]:
    """Texts in which each v1 rule changes its input, the rules applied in order as fastai 1.0.53 applies them."""
    nlp, hits = _blank_english(), {r.__name__: 0 for r in (*V1_PRE_RULES, *V1_POST_RULES)}
    for text in texts:
        text = "xxbos " + text
        for rule in V1_PRE_RULES:
            new = rule(text)
            hits[rule.__name__] += new != text
            text = new
        tokens = [t.text for t in nlp.tokenizer(text)]
        for rule in V1_POST_RULES:
            new = rule(tokens)
            hits[rule.__name__] += new != tokens
            tokens = new
    return hits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fixture", type=Path, default=FIXTURE, help="another run of fastai1_fixtures.py (--out)")
    args = ap.parse_args()
    record = json.loads(gzip.decompress(args.fixture.read_bytes()))
    v1 = FastaiTokenizer(list(FASTAI_SPECIALS), rules="fastai_v1")
    v2 = FastaiTokenizer(list(FASTAI_SPECIALS))
    print(f"fixture: {args.fixture.name}, made by {record['made_by']}; its spaCy {record['spacy']}")
    print(f"here: spaCy {spacy.__version__}, python {sys.version.split()[0]}")
    print(f"\n{'source':36s} {'texts':>5s} {'tokens':>7s}   {'fastai_v1 identical':>19s}   "
          f"{'fastai_v2 identical':>19s}")
    total = same1 = same2 = ntok = 0
    all_texts, failures = [], []
    for name, items in record["sources"].items():
        texts = [i["text"] for i in items]
        all_texts += texts
        a, b = v1.tokenize_documents(texts), v2.tokenize_documents(texts)
        ok1 = sum(x == i["tokens"] for x, i in zip(a, items))
        ok2 = sum(x == i["tokens"] for x, i in zip(b, items))
        failures += [i["text"][:70] for x, i in zip(a, items) if x != i["tokens"]]
        n = sum(len(i["tokens"]) for i in items)
        total, same1, same2, ntok = total + len(items), same1 + ok1, same2 + ok2, ntok + n
        print(f"{name:36s} {len(items):5d} {n:7d}   {ok1:5d} ({100 * ok1 / len(items):5.1f}%)     "
              f"{ok2:5d} ({100 * ok2 / len(items):5.1f}%)")
    print(f"{'all':36s} {total:5d} {ntok:7d}   {same1:5d} ({100 * same1 / total:5.1f}%)     "
          f"{same2:5d} ({100 * same2 / total:5.1f}%)")
    print("\nper-rule cases (short texts, one group per rule that differs):")
    for rule, items in record["cases"].items():
        texts = [i["text"] for i in items]
        ok1 = sum(x == i["tokens"] for x, i in zip(v1.tokenize_documents(texts), items))
        ok2 = sum(x == i["tokens"] for x, i in zip(v2.tokenize_documents(texts), items))
        failures += [i["text"] for x, i in zip(v1.tokenize_documents(texts), items) if x != i["tokens"]]
        print(f"  {rule:64s} v1 {ok1}/{len(items)}  v2 {ok2}/{len(items)}")
    print(f"\ntexts (of {total}) in which each fastai v1 rule changes something:")
    for rule, n in rule_hits(all_texts).items():
        print(f"  {rule:22s} {n:5d}")
    for name, tok in (("fastai_v1", v1), ("fastai_v2", v2)):
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            tok.tokenize_documents(all_texts)
            times.append(time.perf_counter() - start)
        t = statistics.median(times)
        print(f"tokens/s {name} (median of {args.runs}, one process): {ntok / t:,.0f} ({t:.2f} s)")
    for text in failures:
        print("DISAGREES:", repr(text))
    print("result:", "fastai_v1 AGREES EVERYWHERE" if not failures else f"{len(failures)} DISAGREE")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
