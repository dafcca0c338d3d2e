# %% [markdown]
# # 04 · Stages 1 and 2: pretraining and LM fine-tuning
#
# Stage 1 (ULMFiT §3.1) trains the AWD-LSTM language model on a general-domain corpus; here WikiText-2 (the paper
# used WikiText-103). Stage 2 (§3.2) fine-tunes that LM on the target task's own texts, the Stop Clickbait
# headlines, with two techniques: **discriminative fine-tuning** (a smaller LR for lower layers) and **slanted
# triangular learning rates** (STLR). Pretraining trains every layer at one LR, with STLR (`small`) or fastai's
# one-cycle (`tiny`, `paper`).
#
# **How long it runs.** Full mode, whose outputs are committed: 34 min on an Intel Xeon Cascade Lake, 2 cores,
# 2026-11-26, 26 of them pretraining the WikiText-2 LM that later notebooks reuse (~8 min once it exists). QUICK mode:
# 73 s in CI (AMD EPYC Zen 3, 2 cores, 2026-12-08); it trains far smaller models, so its figures differ from the ones
# the prose quotes.
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
# %% [markdown]
# ## Perplexity per token and per word
#
# Perplexity is exp(mean negative log-likelihood): the number of equally likely choices the model is as unsure as.
# *Per token* averages over the tokenizer's pieces, so it depends on the tokenizer: a vocabulary that cuts words
# into more pieces makes each piece easier to guess (the second half of "clickb|ait" is nearly certain) and lowers
# the per-token figure without the model knowing more. *Per word* spreads the same total NLL over the words instead,
#
# $$\mathrm{ppl}_{\text{word}} = \exp\Big(\frac{\text{total NLL}}{\#\text{words}}\Big)
#   = \mathrm{ppl}_{\text{token}}^{\;\#\text{tokens} / \#\text{words}},$$
#
# a unit every LM on the same text shares, whatever its vocabulary (AWD-LSTM's 65.8 is per WikiText word).
# The exponent is what makes per-word figures explode on text the tokenizer was not trained on. In the run above,
# the WikiText-2 tokenizer needs 61,227 tokens for the 25,815 words of the held-out headlines, 2.37 pieces a word
# (on WikiText-2 itself 313,044 / 217,646 = 1.44), so the pretrained LM's 172.2 per token before fine-tuning is
# 172.2^2.37 ≈ 2.0 × 10^5 per word, the `2.01e+05` printed above, and after fine-tuning 29.1^2.37 ≈ 2,960 (printed:
# 2,965). Compare per-word figures across tokenizers, per-token ones only between LMs that share one.
# %% [markdown]
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
# %% [markdown]
# <details>
# <summary>Answers (open after trying the questions)</summary>
#
# 1. `slanted_triangular_lr` sets cut = ⌊T · cut_frac⌋ = ⌊1000 × 0.1⌋ = 100, so STLR peaks at step 100 (at
#    η_max = 1e-2 in the plot). At step 0, p = 0 and η = η_max/32 = 1e-2/32 ≈ 3.1e-4; at step 1,000,
#    p = 1 − 900/900 = 0, so it is back at η_max/32 ≈ 3.1e-4. (The code divides the decay by T − cut, which here
#    equals eq. 3's cut · (1/cut_frac − 1) = 100 × 9 = 900 because 1,000 × 0.1 is a whole number.)
# 2. §3.2: the model should *"quickly converge to a suitable region of the parameter space in the beginning of
#    training and then refine its parameters"*. The short rise starts at η_max/32, so the first updates of the
#    pretrained weights are small, yet reaches the large LR after only 10% of the steps; the long linear decay then
#    spends the other 90% taking ever smaller steps to settle. The other way round (slow rise, fast fall) would
#    spend most of the budget on large exploratory steps and leave few steps to refine.
# 3. Because the decoder is tied to the embedding: one matrix is both the input embedding (bottom) and the output
#    softmax layer (top), and `LanguageModel.layer_groups()` puts it in the top group, as fastai does. As the
#    output layer it must adapt most to the target texts' token distribution, so it gets η^L (lr 3.00e-03,
#    lr_scale 1.000 in the printout) and is the group `freeze_first_epoch` trains alone. The classifier has no
#    decoder, and `TextClassifier.layer_groups()` puts its embedding in the bottom group instead.
# 4. Each group down divides by 2.6, so the lowest of three LSTM groups runs 2.6³ = 17.6× below the top one: the
#    `small` preset that trained this notebook's LMs has 3 LSTM layers, so its lstm_0 gets 2e-3 / 17.6 ≈ 1.1e-4.
#    The plotted `tiny` LM has only two LSTM groups: its lstm_0 prints lr_scale 0.148 = 1/2.6² = 1/6.76
#    (3.00e-03 → 4.44e-04).
# 5. The pretrained LM's validation loss and perplexities on the held-out clickbait headlines (valid_loss 5.149,
#    valid_ppl 172.2 per token, valid_ppl_word 2.01e+05 in the summary), computed by `_train_lm` with
#    `measure_before=True` before `fit` takes its first step. It is the "no fine-tuning" reference that the after
#    value (29.1) and the first row of the small Table 6 are read against, and it can only be measured while the
#    weights are still the pretrained ones, which is also why a resumed run does not measure it again.
# 6. Fine-tuning at all does almost all of it: even the worst variant goes from 172.2 to 52.2, a drop of 120.0,
#    while the three schedules differ by 52.2 − 34.1 = 18.1. The order is the reverse of the paper's: after 60
#    steps plain Full (constant LR) is lowest (34.1), then Full + discr (42.5), then Full + discr + stlr (52.2),
#    which is what larger average steps buy in a short run. Table 6's claim is about the *classifier's* error after
#    fine-tuning to convergence, which one seed of 60 steps per variant cannot test; this notebook's main run
#    (discr + STLR with `freeze_first_epoch`, 393 steps) reached 29.1.
#
# </details>
# %% [markdown]
# ## Change this and rerun
#
# 1. **The shape of STLR** (no training; seconds). In the first code cell of "The schedules are functions of the
#    step", give the STLR call other settings: `slanted_triangular_lr(s, total, 1e-2, cut_frac=0.5)`, then
#    `ratio=4` instead. Rerun that cell. With `cut_frac=0.5` the peak moves to step ⌊1000 × 0.5⌋ = 500 and the
#    slant becomes a symmetric triangle that spends half the budget climbing, the opposite of §3.2's short warm-up;
#    with `ratio=4` the curve starts and ends at η_max/4 instead of η_max/32, so the first and last steps are far
#    larger.
# 2. **The discriminative factor** (no training). In the per-group cell (`cfg = preset("tiny", "finetune")`),
#    replace `cfg.train.lr_decay_per_layer` in the `discriminative_lrs(...)` call by `1.0`, then by `4.0`, and
#    rerun it. With 1.0 every group prints lr_scale 1.000 and the curves coincide (one LR for all layers, Table 6's
#    "Full"); with 4.0 lstm_1 gets 1/4 = 0.250 and lstm_0 1/16 = 0.0625, so the lowest layer barely moves: the
#    stronger the factor, the more of the pretrained lower layers is kept, and the less they can adapt.
# 3. **The small Table 6 over longer runs** (training: each 60-step run took 41-47 s, so about 3.5-4 minutes each
#    at 300 steps). In the Table 6 cell change `cap = ["max_steps=60", "max_minutes=0"]` to `"max_steps=300"`.
#    `run_once` reuses a finished run dir whatever its config, so first delete `runs/full/nb04-table6-full`,
#    `runs/full/nb04-table6-full-discr` and `runs/full/nb04-table6-full-discr-stlr` (`runs/quick/…` in QUICK mode),
#    then rerun that cell, the bar chart and the "lowest perplexity" cell. Look at whether the gaps between the
#    variants shrink as each gets nearer convergence, and whether the constant LR keeps its lead: it never lowers
#    its step size, so theory says it should stop improving (or start to overfit the small headline corpus)
#    earlier, while STLR's decay lets it settle. Perplexity is still not Table 6's measure, which is the classifier
#    trained on each LM.
