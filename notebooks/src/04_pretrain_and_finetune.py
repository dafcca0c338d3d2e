# %% [markdown]
# # 04 · Stages 1 and 2: pretraining and LM fine-tuning
#
# Stage 1 (ULMFiT §3.1) trains the AWD-LSTM language model on a general-domain corpus; here WikiText-2 (the paper
# used WikiText-103). Stage 2 (§3.2) fine-tunes that LM on the target task's own texts, the Stop Clickbait
# headlines, with two techniques: **discriminative fine-tuning** (a smaller LR for lower layers) and **slanted
# triangular learning rates** (STLR). Pretraining trains every layer at one LR, with STLR (`small`) or fastai's
# one-cycle (`tiny`, `paper`).
# %% [include] _setup.py
# %% [markdown]
# ## The schedules are functions of the step
#
# STLR (§3.2, eq. 3) rises linearly for the first `cut_frac` = 10% of the steps, from η_max/32 to η_max, then
# decays linearly back: a short warm-up to find a good region quickly, then a long refinement. One-cycle (fastai)
# warms up over 25% with half cosines and anneals to η_max/10⁴. Look at the shapes and at where each peaks.
# %%
from ulmfit.schedule import discriminative_lrs, one_cycle_lr, slanted_triangular_lr

total = 1000
steps = np.arange(total + 1)
plt.plot(steps, [slanted_triangular_lr(s, total, 1e-2) for s in steps], label="STLR (cut_frac 0.1, ratio 32)")
plt.plot(steps, [one_cycle_lr(s, total, 1e-2) for s in steps], label="one-cycle (pct_start 0.25)")
plt.xlabel("optimiser step")
plt.ylabel("learning rate")
plt.legend()
plt.show()
# %% [markdown]
# STLR peaks at step 100 and is back at η_max/32 at the end; one-cycle peaks at step 250 and ends near zero.
#
# ## Discriminative learning rates (§3.2)
#
# Each layer group l gets η^l, with η^(l-1) = η^l / 2.6: the lower layers hold more general features and should
# move less. For the `tiny` LM the groups are lstm_0, lstm_1 and the tied embedding/decoder on top; the loop sets
# every group's LR to `schedule(step) × lr_scale`. Look at the per-group curves on a log scale.
# %%
import dataclasses

from ulmfit.awd_lstm import LanguageModel
from ulmfit.config import preset
from ulmfit.schedule import param_groups

cfg = preset("tiny", "finetune")
lm = LanguageModel(dataclasses.replace(cfg.model, vocab_size=1000))
names = [name for name, _ in lm.layer_groups()]
lrs = discriminative_lrs(cfg.train.lr, len(names), cfg.train.lr_decay_per_layer)
for group in param_groups(lm.layer_groups(), lrs, weight_decay=0.01):
    print(f"{group['name']:<20} lr {group['lr']:.2e}  lr_scale {group['lr_scale']:.3f}  tensors {len(group['params'])}")
for name, lr in zip(names, lrs):
    plt.semilogy(steps, [slanted_triangular_lr(s, total, lr) for s in steps], label=name)
plt.xlabel("optimiser step")
plt.ylabel("learning rate (log)")
plt.legend()
plt.show()
# %% [markdown]
# Same STLR shape for every group, shifted down by a factor 2.6 per group below the top.
# %% [include] _runs.py
# %% [markdown]
# ## Stage 1: pretrain on WikiText-2
#
# `pretrain` trains a SentencePiece tokenizer on the training articles, numericalises the corpus and trains the LM
# (QUICK: the `tiny` model for 1,000 steps, a few minutes; full: the `small` preset, 3 epochs). The run dir is
# shared with the other notebooks. Look at the training loss and the LR from `metrics.jsonl`.
# %%
pre_dir = pretrained_lm()
records = read_metrics(pre_dir)
train = [r for r in records if r["kind"] == "train"]
epochs = [r for r in records if r["kind"] == "epoch"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
ax1.plot([r["step"] for r in train], [r["loss"] for r in train], "o-", label="train (running mean)")
ax1.plot([r["step"] for r in epochs], [r["valid_loss"] for r in epochs], "s", ms=8, label="valid, end of epoch")
ax1.set(xlabel="step", ylabel="cross-entropy per token", title="pretraining loss")
ax1.legend()
ax2.plot([r["step"] for r in train], [r["lr"] for r in train], "o-")
ax2.set(xlabel="step", ylabel="LR (every layer)", title=f"{stage_config('pretrain').train.schedule}, as logged")
plt.tight_layout()
plt.show()
print({k: round(v, 2) for k, v in epochs[-1].items() if k.startswith("valid")})
# %% [markdown]
# The loss falls fast while the LR warms up, then slowly as it anneals. `valid_ppl` is per sub-word token;
# `valid_ppl_word` rescales the same NLL to WikiText words (+1 per line), the unit AWD-LSTM's 65.8 test perplexity
# uses — a tiny model trained for minutes is of course far from it.
#
# ## Stage 2: fine-tune the LM on the clickbait headlines
#
# `finetune` loads the pretrained run, keeps its tokenizer and architecture, measures the validation perplexity
# on the headlines *before* training (written to `before.json`), then trains with STLR and discriminative LRs.
# Look at the perplexity on the target texts before and after.
# %%
ft_dir = finetuned_lm("clickbait")
before = json.loads((ft_dir / "before.json").read_text())
ft_records = read_metrics(ft_dir)
after = [r for r in ft_records if r["kind"] == "epoch"][-1]
ft_train = [r for r in ft_records if r["kind"] == "train"]
print(f"clickbait valid perplexity per token: before fine-tuning {before['valid_ppl']:.1f}, after {after['valid_ppl']:.1f}")
print(f"                    per word:         before {before['valid_ppl_word']:.3g}, after {after['valid_ppl_word']:.3g}")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
ax1.bar(["pretrained\n(before)", "fine-tuned\n(after)"], [before["valid_ppl"], after["valid_ppl"]], color=["C7", "C2"])
ax1.set(ylabel="valid perplexity / token", title="clickbait headlines")
ax2.plot([r["step"] for r in ft_train], [r["loss"] for r in ft_train], "o-", label="train")
ax2.axhline(before["valid_loss"], color="C7", ls="--", label="valid before")
ax2.axhline(after["valid_loss"], color="C2", ls="--", label="valid after")
ax2.set(xlabel="step", ylabel="cross-entropy", title="fine-tuning loss")
ax2.legend()
plt.tight_layout()
plt.show()
# %% [markdown]
# Fine-tuning adapts the general-domain LM to the headlines' vocabulary and style: the perplexity on held-out
# headlines drops markedly. Notebook 05 and `clickbait.ipynb` build the classifier (§3.3) on this fine-tuned LM.
