"""Make tests/fixtures/fastai1_tokens.json.gz: real texts and the tokens fastai 1.0.53 itself gives them (issue 29).

    python -m venv /tmp/fa1     # then a .pth in its site-packages naming a site-packages with torch and spaCy
    /tmp/fa1/bin/pip install pandas fastprogress && /tmp/fa1/bin/pip install --no-deps fastai==1.0.53
    PYTHONPATH=. ULMFIT_MIRROR=/work/shared/data /tmp/fa1/bin/python benchmarks/fastai1_fixtures.py [--out FILE]

fastai 1.0.53 is the version that trained the published wt103-fwd/bwd (June 2019). It is run unmodified, through
the path its data block API takes (`TokenizeProcessor.process`: `_join_texts` puts "xxbos " in front, then
`Tokenizer.process_all` with the default pre_rules, `SpacyTokenizer('en')` and post_rules). Two shims make a 2019
package import on Python 3.11 and spaCy 3; neither touches a rule:
  - Python 3.10 removed the `collections.Iterable` (etc.) aliases fastai's imports name: they are put back;
  - spaCy 3's `spacy.blank` has no `disable=` argument (fastai passes disable=["parser","tagger","ner"]); a blank
    pipeline has none of those components, so the argument is dropped.
The texts are sampled (seeded) from the data mirror: kinds chosen to exercise every rule that differs between
fastai v1 and v2 (issue 29). `CASES` are short strings, one or more per differing rule, for the unit tests.
"""
from __future__ import annotations

import collections
import collections.abc
import gzip
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

for _name in ("Iterable", "Sequence", "Mapping", "MutableMapping", "Callable", "Hashable", "Sized", "Collection"):
    setattr(collections, _name, getattr(collections.abc, _name))          # shim 1 (see the docstring)
import spacy  # noqa: E402

_blank = spacy.blank
spacy.blank = lambda lang, disable=None, **kw: _blank(lang, **kw)        # shim 2: a blank pipeline has no parser

import fastai  # noqa: E402
from fastai.text.data import _join_texts  # noqa: E402
from fastai.text.transform import Tokenizer  # noqa: E402

from ulmfit.data import download as datasets  # noqa: E402

OUT = Path(__file__).parents[1] / "tests" / "fixtures" / "fastai1_tokens.json.gz"
MIRROR = Path(os.environ.get("ULMFIT_MIRROR", "/work/shared/data"))

CASES = {    # rule that differs -> short texts that show it (run through fastai 1.0.53 like the real texts)
    "replace_rep: 4+ repeats (v2: 3+)": ["In 1999 and 2000 it rained.", "Sooo good!!!", "Sooooo good!!!!"],
    "replace_wrep: a word and its separator 4+ times (v2: 3+ words)": [
        "it was so so so good", "it was so so so so good", "ha! ha! ha! ha! ha!"],
    "case markers per spaCy token (v2: per whitespace word)": [
        "I'm sure NASA's budget (Hello) is \"Big\" - CEO-level.", "THE END. U.S. McDonald"],
    "fix_html: no '...' -> ' …' (v2 rewrites it)": ["Well... ok...."],
    "fix_html: ' @,@ ' -> ',' (v2 keeps it)": ["1 @,@ 000 people"],
    "spec_add_spaces: around \\n (v2: around \\\\ instead)": ["one\ntwo<br />three", "a\\b"],
    "no '▁' for spaces inside tokens, no strip (v2 does both)": [" lead\u00a0space ", "tab\there  \n\n end"],
}


def sample(texts: list[str], n: int, rng: np.random.Generator) -> list[str]:
    return [texts[i] for i in sorted(rng.choice(len(texts), size=min(n, len(texts)), replace=False))]


def wikipedia_lines(limit: int = 200_000) -> list[str]:
    """Lines of the first shard of wikipedia_2015 (real case, years, numbers)."""
    lines = []
    with gzip.open(MIRROR / "wikipedia_2015" / "wiki-00000.txt.gz", "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(line.rstrip("\n"))
            if len(lines) >= limit:
                break
    return lines


def load_sources(seed: int = 0) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    imdb = datasets.load_labelled("imdb")["test"][0]
    short = [t for t in imdb if len(t) < 700]         # keeps the committed fixture small
    wiki2 = [line for doc in datasets.load_lm_corpus("wikitext2")["train"] for line in doc.split("\n")
             if line.strip() and len(line) < 700]
    wiki15 = wikipedia_lines()
    caps = re.compile(r"\b[A-Z]{2,}\b")
    years = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
    triple = re.compile(r"(\d)\1\1")
    return {
        "imdb (with HTML)": sample([t for t in short if "<br" in t], 200, rng),
        "clickbait": sample(datasets.load_labelled("clickbait")["test"][0], 300, rng),
        "wikitext2 lines": sample(wiki2, 300, rng),
        "wikipedia_2015 lines": sample([w for w in wiki15 if len(w) < 700], 300, rng),
        "imdb all-caps words": sample([t for t in short if len(caps.findall(t)) >= 3], 100, rng),
        "wikipedia years (1999, 2000, ...)": sample(
            [w for w in wiki15 if len(w) < 1000 and any(triple.search(y) for y in years.findall(w))], 100, rng),
        "imdb repeated chars": sample([t for t in short if re.search(r"(\S)\1{3,}", t)], 100, rng),
        "imdb repeated words": sample([t for t in short if re.search(r"\b(\w+)(\W+\1\b){2,}", t)], 100, rng),
    }


def main() -> None:
    out = Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else OUT   # e.g. a spaCy 2 run's
    tok = Tokenizer(n_cpus=1)
    run = lambda texts: tok.process_all(_join_texts(texts))          # noqa: E731 (TokenizeProcessor.process)
    sources = load_sources()
    sdist = Path("/tmp/fa1src/fastai-1.0.53.tar.gz")
    record = {
        "made_by": f"fastai {fastai.__version__} ({Path(fastai.__file__).parent}), run unmodified through "
                   "TokenizeProcessor's path (_join_texts + Tokenizer(n_cpus=1).process_all); shims: "
                   "collections ABC aliases, spacy.blank(disable=) dropped",
        "fastai_sdist_sha256": hashlib.sha256(sdist.read_bytes()).hexdigest() if sdist.is_file() else None,
        "spacy": spacy.__version__, "python": sys.version.split()[0],
        "script": "benchmarks/fastai1_fixtures.py", "seed": 0,
        "licences": "IMDb (Maas et al. 2011, research use), clickbait (MIT), WikiText-2 and wikipedia_2015 "
                    "(CC BY-SA 3.0): see each folder's README in the data mirror",
        "cases": {rule: [{"text": t, "tokens": toks} for t, toks in zip(texts, run(texts))]
                  for rule, texts in CASES.items()},
        "sources": {name: [{"text": t, "tokens": toks} for t, toks in zip(texts, run(texts))]
                    for name, texts in sources.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(json.dumps(record, ensure_ascii=False).encode("utf-8"), mtime=0))
    n = sum(len(v) for v in record["sources"].values())
    print(f"{out}: {n} texts, {out.stat().st_size / 1e3:.0f} kB; fastai {fastai.__version__}, "
          f"spaCy {spacy.__version__}")


if __name__ == "__main__":
    main()
