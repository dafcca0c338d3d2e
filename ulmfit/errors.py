"""Base layer: the one exception type that means "the user gave us something we cannot use", and the input checks
that several layers make (one home each: what an empty text is, what an unknown label is).

The CLI turns a `UlmfitError` into a single line on stderr and exit code 2, never a traceback.
Library code raises it for bad input (missing file, unknown column, a model dir with missing files...);
programming errors stay ordinary exceptions so that they do show a traceback.
"""


# What str.splitlines breaks on: a user's value echoed in a message (`--set x=<newline>`) must not break its line.
_LINE_BREAKS = {c: repr(chr(c))[1:-1] for c in (0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029)}


class UlmfitError(Exception):
    """A user-facing error: the message says what is wrong and what to do about it, on one line (line breaks in
    it, e.g. from a value the user gave, are written escaped, as `\\n`)."""

    def __init__(self, *args):
        if args and isinstance(args[0], str):
            args = (args[0].translate(_LINE_BREAKS),) + args[1:]
        super().__init__(*args)


class RunFinished(UlmfitError):
    """--resume on a run dir whose run has finished: nothing to do (the CLI says so and exits 0)."""

    def __init__(self, out_dir):
        super().__init__(f"{out_dir} holds a finished run; nothing left to resume (--force trains it again)")
        self.out_dir = out_dir


def empty_texts(texts) -> list[int]:
    """Positions of the texts with nothing but whitespace: the one rule for an empty text, which readers, data
    specs, training and prediction each refuse, in words that name their own input."""
    return [i for i, text in enumerate(texts) if not str(text).strip()]


def refuse_empty_texts(texts, where: str = "") -> None:
    """UlmfitError if any text is empty: prediction's wording (the API, the CLI, an export)."""
    empty = empty_texts(texts)
    if empty:
        raise UlmfitError(f"{len(empty)} empty text(s){where} (first at position {empty[0] + 1}); nothing to classify")


def refuse_unknown_labels(labels, known: list[str], where: str) -> None:
    """UlmfitError naming up to 5 labels the model was not trained on (compared as str, as a file's labels are)."""
    unknown = sorted({str(label) for label in labels} - set(known))
    if unknown:
        raise UlmfitError(f"the {where} data has label(s) {unknown[:5]} that the model does not know; "
                          f"known labels: {known}")
