"""ulmfit: Universal Language Model Fine-tuning (Howard & Ruder 2018) on an AWD-LSTM, from scratch on torch.

From Python, the CLI's own functions: `ulmfit.pipeline` trains and scores (pretrain, finetune, classify, evaluate)
on a `DataSpec`, a registry dataset, files or texts in memory (`DataSpec.from_texts`, `DataSpec.from_frame`);
`ulmfit.TextClassifier.from_pretrained(run_dir)` loads a classifier to `.predict(texts)` and
`ulmfit.LanguageModel.from_pretrained(run_dir)` a language model (both from ulmfit/predict.py). They are imported
on first use, so `import ulmfit` stays light. The README's "Layout" section lists the layers and the files to read.
"""
__version__ = "0.1.0"

_LAZY = {"TextClassifier": "predict", "LanguageModel": "predict"}


def __getattr__(name: str):
    """`ulmfit.TextClassifier` and `ulmfit.LanguageModel`, imported from ulmfit.predict when first asked for."""
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
