"""ulmfit: Universal Language Model Fine-tuning (Howard & Ruder 2018) on an AWD-LSTM, from scratch on torch.

From Python, the CLI's own functions: `ulmfit.pipeline` trains and scores (pretrain, finetune, classify, evaluate)
on a `DataSpec`, a registry dataset, files or texts in memory (`DataSpec.from_texts`, `DataSpec.from_frame`);
`ulmfit.classifier.TextClassifier.from_pretrained(run_dir)` loads a classifier to `.predict(texts)`.
Nothing is imported here, so `import ulmfit` stays light.
"""
__version__ = "0.1.0"
