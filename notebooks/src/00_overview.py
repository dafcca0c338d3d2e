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
#
# **How long it runs.** Full mode, whose outputs are committed: 4 s on an AMD EPYC Zen 3 (AVX2 only), 2 cores,
# 2026-12-08. QUICK mode: 4 s in CI (AMD EPYC Zen 3, 2 cores, 2026-12-08); it trains far smaller models, so its
# figures differ from the ones the prose quotes.
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
# %% [markdown]
# <details>
# <summary>Answers (open after trying the questions)</summary>
#
# 1. Stage 1 (§3.1) trains the AWD-LSTM language model on a large general-domain corpus (WikiText-103 in the paper,
#    also WikiText-2 here). Stage 2 (§3.2) fine-tunes that same LM on the target task's own texts, with discriminative
#    learning rates and STLR. Stage 3 (§3.3) puts a pooling head (concat pooling) on the fine-tuned encoder and trains
#    both on the labelled examples, unfreezing the layers gradually.
# 2. Only stage 3 needs labels. Stages 1 and 2 learn to predict the next token, so any raw text will do: Wikipedia for
#    stage 1, and for stage 2 the task's texts with their labels ignored (`lm_documents` also adds IMDb's unlabelled
#    reviews). This is why ULMFiT works with few labels: most of the learning happens before stage 3.
# 3. `tiny` for tests (and the QUICK notebooks), `small` for a CPU budget, `paper` for the published sizes. In the
#    table, `paper` has 400-d embeddings, 1152 hidden units and 3 layers. It follows fastai's recipe, not the paper's
#    exact settings (the paper has 1150 hidden units); the docstring of `ulmfit/config/__init__.py` lists every
#    difference.
# 4. `dropout_scale` (fastai's `drop_mult`) multiplies all five dropout probabilities of a stage:
#    `ModelConfig.dropout(name)` returns the field times the scale. For `small` pretraining, for example, weight-drop
#    is 0.2 × 0.2 = 0.04. The comment in `ulmfit/config/presets.py` gives the reason: a CPU pretraining run sees only
#    a couple of epochs of a large corpus (3 in the table), so it underfits, and dropout noise costs more than it
#    saves. The finetune and classify stages take more passes (4 and 5 epochs)
#    over much smaller task data, so they can overfit. Their 0.3 and 0.5 are fastai's IMDb values, and the classifier
#    also starts from larger base dropouts (`CLAS_DROPOUTS`).
#
# </details>
# %% [markdown]
# ## Change this and rerun
#
# 1. **See the dropouts a run will really use.** In the presets cell, change the last field of each row from
#    `{c.model.dropout_scale}` to `{c.model.dropout('dropout_weight'):.3g}`, then rerun the cell. Each entry is now the
#    preset's base weight-drop times its scale. In the `small` rows, pretraining should show 0.2 × 0.2 = 0.04, and the
#    classifier 0.5 × 0.5 = 0.25 (its base is `CLAS_DROPOUTS`). Try the other fields too: `dropout_embed`,
#    `dropout_input`, `dropout_hidden` and `dropout_output`.
# 2. **Override a preset, and see what is refused.** In the same cell, import `apply_overrides` next to `preset`
#    (`from ulmfit.config import apply_overrides, preset`). Replace `c = preset(name, stage)` with
#    `c = apply_overrides(preset(name, stage), ["dropout_scale=2"])`, then rerun. This is what `--set dropout_scale=2`
#    does on the command line. In the LM rows the largest base dropout is 0.25, which doubles to 0.5, so they should
#    pass. The first classify row should stop the cell with an `UlmfitError`: the classifier's base `dropout_weight` is
#    0.5, and 0.5 × 2 = 1.0 falls outside [0, 1). `validate` in `ulmfit/config/overrides.py` catches it before any
#    run could start. Then try `dropout_scale=1.5`, which every stage should accept.
