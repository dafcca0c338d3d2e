"""The one exception type that means "the user gave us something we cannot use".

The CLI turns a `UlmfitError` into a single line on stderr and exit code 2, never a traceback.
Library code raises it for bad input (missing file, unknown column, a model dir with missing files...);
programming errors stay ordinary exceptions so that they do show a traceback.
"""


class UlmfitError(Exception):
    """A user-facing error: the message says what is wrong and what to do about it."""


class RunFinished(UlmfitError):
    """--resume on a run dir whose run has finished: nothing to do (the CLI says so and exits 0)."""

    def __init__(self, out_dir):
        super().__init__(f"{out_dir} holds a finished run; nothing left to resume (--force trains it again)")
        self.out_dir = out_dir
