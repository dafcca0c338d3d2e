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
# decays linearly back: a short warm-up to find a good region quickly, then a long refinement. With T the number of
# training iterations, `cut_frac` = 0.1 and `ratio` = 32:
#
# $$cut = \lfloor T \cdot cut\_frac \rfloor,\qquad
# p = \begin{cases} t / cut & t < cut \\ 1 - \dfrac{t - cut}{cut \cdot (1/cut\_frac - 1)} & \text{otherwise}
# \end{cases},\qquad \eta_t = \eta_{max} \cdot \frac{1 + p\,(ratio - 1)}{ratio}$$
#
# §3.2: *"we would like the model to quickly converge to a suitable region of the parameter space in the beginning
# of training and then refine its parameters."* `ulmfit.train.schedule.slanted_triangular_lr(step, total, lr)` is this
# formula line by line. One-cycle (fastai) warms up over 25% with half cosines and anneals to η_max/10⁴. Look at the
# shapes and at where each peaks.
# %%
from ulmfit.train.schedule import discriminative_lrs, one_cycle_lr, slanted_triangular_lr

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
# Each layer group l gets its own learning rate in the SGD update (eq. 2), with η^(l-1) = η^l / 2.6: the lower
# layers hold more general features and should move less.
#
# $$\theta_t^l = \theta_{t-1}^l - \eta^l \cdot \nabla_{\theta^l} J(\theta), \qquad \eta^{l-1} = \eta^l / 2.6$$
#
# §3.2: *"we empirically found it to work well to first choose the learning rate η^L of the last layer by
# fine-tuning only the last layer and using η^(l−1) = η^l/2.6 as the learning rate for lower layers."*
#
# Which group is "the last layer"? In the LM the decoder is tied to the embedding (one matrix), so that matrix is
# both the first and the last layer. `LanguageModel.layer_groups()` puts it in the **top** group, as fastai does: it
# is the output layer that must adapt most to the new vocabulary distribution, and the one `freeze_first_epoch`
# trains alone. For the `tiny` LM the groups are therefore lstm_0, lstm_1, then the embedding/decoder on top; the
# loop sets every group's LR to `schedule(step) × lr_scale`. Look at the per-group curves on a log scale.
# %%
import dataclasses

from IPython.display import Markdown

from ulmfit.model.awd_lstm import LanguageModel
from ulmfit.config import preset
from ulmfit.train.schedule import param_groups

cfg = preset("tiny", "finetune")
lm = LanguageModel(dataclasses.replace(cfg.model, vocab_size=1000))
names = [name for name, _ in lm.layer_groups()]
lrs = discriminative_lrs(cfg.train.lr, len(names), cfg.train.lr_decay_per_layer)
for group in param_groups(lm.layer_groups(), lrs, weight_decay=0.01):
    print(f"{group['name']:<20} lr {group['lr']:.2e}  lr_scale {group['lr_scale']:.3f}  tensors {len(group['params'])}")
legend = {"embedding": "embedding = tied decoder (top group)"}
for name, lr in zip(names, lrs):
    plt.semilogy(steps, [slanted_triangular_lr(s, total, lr) for s in steps], label=legend.get(name, name))
plt.xlabel("optimiser step")
plt.ylabel("learning rate (log)")
plt.legend()
plt.show()
# %% [markdown]
# Same STLR shape for every group, shifted down by a factor 2.6 per group below the top. The highest curve is the
# tied embedding/decoder matrix: it is the LM's output layer, so it is "the last layer" of eq. 2, not the first.
# %% [include] _runs.py
# %% [markdown]
# ## Stage 1: pretrain on WikiText-2
#
# `pretrain` trains a SentencePiece tokenizer on the training articles, numericalises the corpus and trains the LM
# (QUICK: the `tiny` model for 1,000 steps, a few minutes; full: the `small` preset, 3 epochs within a 25-minute
# budget, of which 2 fit on 2 free cores). The run dir is
# shared with the other notebooks. Look at the training loss and the LR from `metrics.jsonl`. The train curve
# ("running mean" in the legend) is, at each logged step, the mean loss since that epoch began, so it resets at
# each epoch boundary and lags the loss of the latest batches.
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
# headlines drops markedly.
#
# ## What fine-tuning does to the LM's text
#
# The same prompts, sampled from the pretrained LM and from the fine-tuned one (`ulmfit.predict.generate`,
# temperature 0.7, top-k 40, the same seed for both models). Look for Wikipedia's register before and headline style
# (Title Case, "You", numbers, short lines) after.
# %%
from ulmfit.predict import generate, load_language_model

lms = {"pretrained (WikiText-2)": load_language_model(pre_dir), "fine-tuned (headlines)": load_language_model(ft_dir)}
for seed, prompt in enumerate(["This Is Why", "The president of", "17 Things"]):
    for name, lm in lms.items():
        print(f"{name:<24} [{prompt}] {generate(lm, prompt, n_words=14, temperature=0.7, seed=seed)}")
    print()
# %% [markdown]
# ## STLR and discriminative LR against plain fine-tuning: a small Table 6
#
# ULMFiT Table 6 fine-tunes the LM in three ways — "Full" (every layer, one LR, no schedule), "Full + discr"
# (discriminative LRs) and "Full + discr + stlr" — and reports the *classifier's* error on top of each. Here the
# cheaper, direct measure: the fine-tuned LM's perplexity on the held-out headlines, each variant trained from the
# same pretrained LM for the same number of optimiser steps (60) at the same peak LR, every
# layer trainable from the start (no `freeze_first_epoch`), so only the LR schedule differs.
# %%
ABLATION = {"no LM fine-tuning": None,
            "Full (constant LR, one LR)": ["schedule=constant", "lr_decay_per_layer=1.0"],
            "Full + discr": ["schedule=constant", "lr_decay_per_layer=2.6"],
            "Full + discr + stlr": ["schedule=stlr", "lr_decay_per_layer=2.6"]}
cap = ["max_steps=60", "max_minutes=0"]
table6 = {"no LM fine-tuning": before["valid_ppl"]}
for name, overrides in ABLATION.items():
    if overrides is None:
        continue
    slug = name.split("(")[0].strip().lower().replace(" + ", "-").replace(" ", "-")
    run_dir = run_once(RUNS / f"nb04-table6-{slug}", finetune,
                       stage_config("finetune", "freeze_first_epoch=false", *overrides, *cap),
                       pretrained_lm(), clickbait_data())
    table6[name] = json.loads((run_dir / "config.json").read_text())["history"][-1]["valid_ppl"]
Markdown("\n".join([f"| LM fine-tuning ({PRESET} preset, {cap[0].split('=')[1]} steps) | clickbait valid ppl/token |",
                     "|---|---|", *[f"| {name} | {ppl:.1f} |" for name, ppl in table6.items()]]))
# %%
plt.figure(figsize=(6, 2.6))
plt.barh(list(table6)[::-1], list(table6.values())[::-1], color=["C2", "C0", "C1", "C7"])
for i, v in enumerate(list(table6.values())[::-1]):
    plt.text(v, i, f" {v:.1f}", va="center")
plt.xlabel("valid perplexity / token (lower is better)")
plt.title("a small Table 6: LM fine-tuning variants")
plt.show()
# %% [markdown]
# Any fine-tuning helps most (the first row against the rest). Between the variants, read the ordering with care:
# each is one run (one seed) of only 60 steps, and at an equal, short step count the schedule that takes the largest
# steps lowers the perplexity fastest — a constant LR at the peak moves every layer by η_max at every step, STLR's
# average LR is about half its peak, and discriminative LRs move the three LSTM layers 2.6×, 6.8× and 17.6× less. The paper's
# claim is different: after fine-tuning to convergence, discr + STLR gives the better *classifier* (Table 6), because
# it keeps more of what the lower layers learnt in pretraining. Measuring that needs a classifier per variant and
# longer runs than this notebook's budget. The cell below states what this run produced.
# %%
best = min((k for k in table6 if k != "no LM fine-tuning"), key=table6.get)
print(f"lowest perplexity: {best} ({table6[best]:.1f}); plain Full: {table6['Full (constant LR, one LR)']:.1f}; "
      f"Full + discr + stlr: {table6['Full + discr + stlr']:.1f}")
# %% [markdown]
# Notebook 05 and `clickbait.ipynb` build the classifier (§3.3) on the fine-tuned LM.
#
# ## Questions
#
# 1. At which step does STLR reach its peak for T = 1,000 iterations, and what is its LR at the first and last step?
# 2. Why does ULMFiT warm up quickly and decay slowly, rather than the other way round?
# 3. In the per-group LR plot, why is the highest curve the embedding matrix, which sits at the *bottom* of the
#    network?
# 4. With 3 LSTM groups below the top group and a factor 2.6, how much smaller is the lowest group's LR than the top's?
# 5. What does `before.json` hold, and why is it measured before any fine-tuning step?
# 6. In the small Table 6, how much of the perplexity drop comes from fine-tuning at all, and how much from the
#    choice of schedule?