"""Layer 2 of ulmfit, text: text -> token ids -> batches (STYLE.md §5.2). Imports the base and data layers.

`tokenizer` (SentencePiece + fastai-style pre-rules), `fastai_tokenizer` (fastai's word tokenizer), `corpus` (a
tokenized LM corpus on disk), `batching` (LM streams and padded classification batches, AWD-LSTM §4.1).
"""
