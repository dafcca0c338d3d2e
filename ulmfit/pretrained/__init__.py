"""Layer 7 of ulmfit, pretrained: language models from elsewhere (STYLE.md §5.2). Imports every layer
up to `checkpoint`.

`model_zoo` (the shipped LMs), `fastai_interop` (fastai's weights in and out), `transfer` (embeddings across
vocabularies).
"""
