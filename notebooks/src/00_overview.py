# %% [markdown]
# # 00 · ULMFiT in one page
#
# **Universal Language Model Fine-tuning** (Howard & Ruder 2018, "ULMFiT") trains a text classifier from few labels by
# transferring a language model (LM). It has three stages (paper Figure 1):
#
# | stage | paper | what is trained | on what | key techniques | `ulmfit` |
# |---|---|---|---|---|---|
# | 1. general-domain LM pretraining | §3.1 | AWD-LSTM LM | WikiText-103 (here also WikiText-2) | AWD-LSTM regularisers (Merity et al. 2017) | `pipeline.pretrain`, `make pretrain` |
# | 2. target-task LM fine-tuning | §3.2 | the same LM | the task's own texts | discriminative LR, slanted triangular LR (STLR) | `pipeline.finetune`, `make finetune` |
# | 3. target-task classifier fine-tuning | §3.3 | encoder + pooling head | the labelled examples | concat pooling, BPT3C, gradual unfreezing | `pipeline.classify`, `make classify` |
#
# The backbone is the AWD-LSTM (Merity, Keskar & Socher 2017): a 3-layer LSTM with weight-drop on the
# hidden-to-hidden matrices, variational (locked) dropout, embedding dropout, AR/TAR and a decoder tied to the
# embedding. ULMFiT's best results ensemble a forward and a backward model (§3.3, "Bidirectional language model").
#
# The notebooks follow the data:
#
# | notebook | topic | modules |
# |---|---|---|
# | 01_tokens_and_batches | pre-rules, SentencePiece, folding the stream, variable BPTT | `tokenizer`, `batching` |
# | 02_regularizers | each AWD-LSTM regulariser re-derived and checked | `regularizers` |
# | 03_awd_lstm | the encoder, the tied LM head, hidden state, layer groups | `awd_lstm` |
# | 04_pretrain_and_finetune | STLR, one-cycle, discriminative LR; stages 1 and 2 | `schedule`, `pipeline` |
# | 05_classifier | concat pooling, BPT3C, gradual unfreezing; stage 3 | `classifier`, `schedule` |
# | clickbait | the whole use case on Stop Clickbait, vs. TF-IDF + logistic regression | all |
# | sentiment_imdb | IMDb, forward + backward ensemble, text generation | `inference` |
# %% [include] _setup.py
# %% [markdown]
# ## A map of the package
#
# Each module opens with a docstring saying which step of the data flow it is and which paper section it
# implements. Look for the order text → tokens → batches → regularisers → model → classifier → schedule → loop.
# %%
import importlib
import pkgutil

import ulmfit

for info in sorted(pkgutil.iter_modules(ulmfit.__path__), key=lambda m: m.name):
    if info.name.startswith("_"):
        continue
    module = importlib.import_module(f"ulmfit.{info.name}")
    first_line = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
    print(f"ulmfit.{info.name:<12} {first_line[:110]}")
# %% [markdown]
# ## The presets
#
# A preset is plain data: `preset(name, stage)` returns the dataclass config of one stage. `tiny` is for tests and
# QUICK notebooks, `small` for a CPU budget, `paper` for the published sizes (400-d embeddings, 1152 hidden units,
# 3 layers, ULMFiT §4). Look at how the dropouts are scaled per stage (fastai's `drop_mult`).
# %%
from IPython.display import Markdown

from ulmfit.config import preset

rows = ["| preset | stage | vocab | emb | hidden | layers | batch | bptt | epochs | lr | schedule | dropout scale |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for name in ("tiny", "small", "paper"):
    for stage in ("pretrain", "finetune", "classify"):
        c = preset(name, stage)
        rows.append(f"| {name} | {stage} | {c.tokenizer.vocab_size} | {c.model.emb_size} | {c.model.hidden_size} | "
                    f"{c.model.n_layers} | {c.train.batch_size} | {c.train.bptt} | {c.train.epochs} | {c.train.lr:g} | "
                    f"{c.train.schedule} | {c.model.dropout_scale} |")
Markdown("\n".join(rows))
# %% [markdown]
# ## The commands
#
# ```
# make pretrain CORPUS=wikitext2 PRESET=small       # stage 1 -> runs/pretrain-wikitext2-small/
# make finetune DATASET=clickbait PRESET=small      # stage 2 -> runs/finetune-clickbait-small/
# make classify DATASET=clickbait PRESET=small      # stage 3 -> runs/classify-clickbait-small/, then evaluate
# python -m ulmfit pretrain --dataset wikitext2 --preset tiny --out runs/pre --max-steps 30
# ```
# Every stage reads the previous stage's run dir and writes its own; `--set field=value` overrides any config field.
# %% [markdown]
# ## Questions
#
# 1. What is trained in each of the three ULMFiT stages, and on which data?
# 2. Which stage needs labels, and which stages can use unlabelled text?
# 3. Which preset would you use for a test, for a CPU budget and for the published sizes?
# 4. What does `dropout_scale` do, and why does the `small` preset printed above scale the dropouts down more for
#    pretraining (0.2) than for LM fine-tuning (0.3) and the classifier (0.5)? (Hint: how many epochs does each
#    stage see on a CPU, and how much data?)
