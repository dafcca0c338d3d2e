"""Long texts (issue 30, class 8): an optional cap on characters per text, and progress for long inputs.

A classifier reads every token of a text through the LSTM (BPT3C), one text per row of a batch, so a single long
text costs time in proportion to its length and does not share its batch: about 70-120 s per MB on one CPU core
with the `small` preset (benchmarks/results/long_text.txt; docs/input-rules.md). `predict`, `evaluate` and
`explain` therefore show a progress bar (on stderr, in tokens) once the input passes `LONG_CHARS` characters, and
take `--max-chars N`, which cuts each text to its first N characters and says how many were cut (`serve`
refuses such a text instead, with a 413: a client can split it, a batch job would rather finish).
"""
from __future__ import annotations

import contextlib
import sys
import warnings

LONG_CHARS = 100_000                     # inputs from here on show progress (several seconds on a CPU)


def cap_texts(texts: list[str], max_chars: int | None) -> list[str]:
    """`texts` with each cut to its first `max_chars` characters (None: unchanged), with a one-line warning."""
    if max_chars is None:
        return texts
    long = sum(len(t) > max_chars for t in texts)
    if long:
        warnings.warn(f"{long} of {len(texts)} text(s) longer than --max-chars {max_chars:,} were cut to their "
                      f"first {max_chars:,} characters", stacklevel=2)
    return [t[:max_chars] for t in texts]


@contextlib.contextmanager
def progress(model, texts: list[str], desc: str, passes: int = 1):
    """A progress bar over the tokens that `model` (a loaded TextClassifier) reads inside this block, shown when
    `texts` hold `LONG_CHARS` characters or more: a forward pre-hook on its encoder counts each chunk's real
    (non-pad) tokens; `passes` is how many times each token is read (integrated gradients: steps + 2)."""
    if sum(map(len, texts)) < LONG_CHARS:
        yield
        return
    from tqdm import tqdm
    n_tokens = sum(len(ids) for ids in model.tokenizer.encode_documents(list(texts)))
    pad = model.config.pad_id
    bar = tqdm(total=n_tokens * passes, unit="tok", unit_scale=True, desc=desc, file=sys.stderr, leave=False,
               dynamic_ncols=True)

    def count(module, args):
        if args:
            bar.update(int((args[0] != pad).sum()))
    handle = model.encoder.register_forward_pre_hook(count)
    try:
        yield
    finally:
        handle.remove()
        bar.close()
