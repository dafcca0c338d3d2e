# %% [markdown]
# # 02 · The AWD-LSTM regularisers, re-derived
#
# ULMFiT keeps every regulariser of the AWD-LSTM (Merity, Keskar & Socher 2017; ULMFiT §3.1). Each one is a few lines
# of plain torch. Here each is written out by hand *for teaching only*, then checked against `ulmfit.model.regularizers`
# with the same random generator, so both draw the same mask and must give the same numbers. The library never
# imports anything from this notebook.
#
# | regulariser | AWD-LSTM | ulmfit |
# |---|---|---|
# | weight-drop (DropConnect on the hidden-to-hidden matrix) | §2 | `WeightDropLSTM` |
# | variational / locked dropout | §4.2 | `LockedDropout` |
# | embedding dropout | §4.3 | `EmbeddingDropout` |
# | activation regularisation (AR) and temporal AR (TAR) | §4.6 | `activation_penalty`, `temporal_penalty` |
#
# **How long it runs.** Full mode, whose outputs are committed: 11 min on an Intel Xeon Cascade Lake, 2 cores,
# 2026-11-26, another job beside it for about 6 of them (~5 min alone). QUICK mode: 31 s in CI (AMD EPYC Zen 3, 2
# cores, 2026-12-08); it trains far smaller models, so its figures differ from the ones the prose quotes.
# %% [include] _setup.py
# %% [markdown]
# ## The mask
#
# Every dropout here uses an "inverted" mask: 0 with probability p, else 1/(1-p), so the expected activation is
# unchanged and evaluation needs no rescaling:
#
# $$m_j = \frac{z_j}{1-p},\quad z_j \sim \mathrm{Bernoulli}(1-p), \qquad \mathbb{E}[m_j\,x_j] = x_j .$$
#
# The regularisers below differ only in the *shape* of the mask, i.e. in which axis shares one draw. Check the two
# values and the kept share.
# %%
from torch import nn

from ulmfit.model.regularizers import dropout_mask


def gen(seed=7):
    return torch.Generator().manual_seed(seed)


p = 0.3
mine = (torch.rand(1000, 50, generator=gen()) >= p).float() / (1 - p)
theirs = dropout_mask(torch.zeros(1), (1000, 50), p, generator=gen())
assert torch.equal(mine, theirs)
print("values:", theirs.unique().tolist(), "| kept share:", (theirs > 0).float().mean().item())
# %% [markdown]
# ## Locked (variational) dropout — AWD-LSTM §4.2
#
# Standard dropout draws a new mask at every time step. Locked dropout draws one mask per sequence and unit,
# shape (B, 1, H), and reuses it for all T steps (Gal & Ghahramani 2016):
#
# $$\tilde h_{b,t,j} = m_{b,j}\, h_{b,t,j} \quad \text{for every } t, \qquad m \in \mathbb{R}^{B\times 1\times H}.$$
#
# AWD-LSTM §4.2: *"variational dropout samples a binary dropout mask only once upon the first call and then to
# repeatedly use that locked dropout mask for all repeated connections within the forward and backward pass."* ulmfit applies it to the embeddings
# (`dropout_input`), between LSTM layers (`dropout_hidden`) and on the last layer's output (`dropout_output`).
# %%
from ulmfit.model.regularizers import LockedDropout

B, T, H = 2, 12, 16
x = torch.randn(B, T, H)
mask = (torch.rand(B, 1, H, generator=gen()) >= p).float() / (1 - p)      # (B, 1, H): one mask per sequence
by_hand = x * mask                                                            # broadcast over T
locked = LockedDropout(p).train()
assert torch.allclose(locked(x, generator=gen()), by_hand)
assert torch.equal(locked.eval()(x), x)                                      # identity in eval mode
print("locked dropout matches; eval mode is the identity")
# %% [markdown]
# The picture shows which units of sequence 0 are silenced at each time step (time runs left to right, one row per
# hidden unit): whole rows for locked dropout, scattered cells for ordinary dropout.
# %%
standard = nn.functional.dropout(torch.ones(T, H), p, training=True)
fig, axes = plt.subplots(1, 2, figsize=(7, 2.6), sharey=True)
for ax, m, title in ((axes[0], mask[0].expand(T, H), "locked: (B, 1, H)"), (axes[1], standard, "standard: (B, T, H)")):
    ax.imshow((m > 0).T, cmap="gray", aspect="auto")
    ax.set(title=title, xlabel="time step")
    ax.grid(False)
axes[0].set_ylabel("hidden unit")
plt.show()
# %% [markdown]
# A dropped unit stays dropped for the whole window under locked dropout (black rows), so the LSTM cannot route
# around it by waiting a step.
#
# ## Embedding dropout — AWD-LSTM §4.3
#
# Drop whole *word types*: a row of the embedding matrix E (V, E) is zeroed for the whole batch, so every occurrence
# of that word vanishes. Looking up `mask[tokens] * E[tokens]` equals looking up in `mask * E`, only cheaper:
#
# $$\tilde E = \operatorname{diag}(m)\,E,\quad m \in \mathbb{R}^{V},\qquad e_t = \tilde E_{w_t}
# \;=\; m_{w_t} E_{w_t}.$$
# %%
import torch.nn.functional as F

from ulmfit.model.regularizers import EmbeddingDropout

V, E = 20, 8
embedding = nn.Embedding(V, E)
tokens = torch.tensor([[3, 5, 3, 7, 3], [5, 5, 9, 3, 1]])                    # (B, T): word 3 occurs 4 times
row_mask = (torch.rand(V, 1, generator=gen(3)) >= 0.5).float() / 0.5      # (V, 1): one number per word type
by_hand = F.embedding(tokens, embedding.weight * row_mask)                    # (B, T, E)
theirs = EmbeddingDropout(0.5).train()(tokens, embedding, generator=gen(3))
assert torch.allclose(theirs, by_hand)
dropped_words = sorted(set(tokens.flatten().tolist()) & set(torch.nonzero(row_mask[:, 0] == 0)[:, 0].tolist()))
print("embedding dropout matches; dropped word types in this batch:", dropped_words)
for w in dropped_words:
    assert theirs[tokens == w].abs().sum() == 0                               # zero at every occurrence
# %% [markdown]
# ## Weight-drop — AWD-LSTM §2
#
# DropConnect on the hidden-to-hidden matrix U (4H, H) of each LSTM: one mask per forward pass, shared by all time
# steps, so the recurrent connections are regularised without touching the fused LSTM kernel's inner loop:
#
# $$\tilde U = M \odot U,\ M \in \mathbb{R}^{4H\times H}, \qquad
# [i_t, f_t, g_t, o_t] = W x_t + \tilde U h_{t-1} + b .$$
#
# AWD-LSTM §2: *"As the same weights are reused over multiple timesteps, the same individual dropped weights remain
# dropped for the entirety of the forward and backward pass."* Below,
# an LSTM written as a loop over time (gate order i, f, g, o, as torch uses) runs with the dropped U by hand.
# %%
from ulmfit.model.regularizers import WeightDropLSTM


def lstm_by_hand(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """A one-layer LSTM, batch-first, one time step at a time: x (B, T, I), h and c (B, H) -> (B, T, H)."""
    outputs = []
    for t in range(x.size(1)):
        gates = x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh                   # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


I, H, wp = 6, 5, 0.5
rnn = WeightDropLSTM(I, H, weight_p=wp).train()
x = torch.randn(3, 7, I)
h0, c0 = torch.zeros(1, 3, H), torch.zeros(1, 3, H)
u_mask = (torch.rand(4 * H, H, generator=gen(11)) >= wp).float() / (1 - wp)   # (4H, H), once per forward
expected = lstm_by_hand(x, h0[0], c0[0], rnn.weight_ih, rnn.weight_hh_raw * u_mask, rnn.bias_ih, rnn.bias_hh)
output, (h, c) = rnn(x, (h0, c0), generator=gen(11))
assert torch.allclose(output, expected, atol=1e-6) and torch.allclose(h[0], output[:, -1])
print("weight-drop matches the hand-written LSTM with a dropped U; max |diff| =",
      f"{(output - expected).abs().max().item():.1e}")
# %% [markdown]
# Two more checks: the raw weight gets a gradient, which is exactly zero where U was dropped; and with weight-drop
# off (eval mode) the layer equals `torch.nn.LSTM` holding the same weights — the plain torch module is the oracle.
# %%
output.sum().backward()
grad = rnn.weight_hh_raw.grad
assert (grad[u_mask == 0] == 0).all() and (grad[u_mask > 0] != 0).float().mean() > 0.9
print(f"dropped weights: {(u_mask == 0).float().mean().item():.2f} of U; all of them get a zero gradient")

oracle = nn.LSTM(I, H, batch_first=True)
with torch.no_grad():
    for name in ("weight_ih", "bias_ih", "bias_hh"):
        getattr(oracle, f"{name}_l0").copy_(getattr(rnn, name))
    oracle.weight_hh_l0.copy_(rnn.weight_hh_raw)
    assert torch.allclose(rnn.eval()(x, (h0, c0))[0], oracle(x, (h0, c0))[0], atol=1e-6)
print("eval mode equals torch.nn.LSTM")
# %% [markdown]
# ## AR and TAR — AWD-LSTM §4.6
#
# Two L2 penalties on the last LSTM layer's output, added to the LM loss: AR (α = 2) keeps the *dropped* outputs
# small; TAR (β = 1) keeps consecutive *raw* outputs close, favouring slowly changing states. With m the locked
# dropout mask and h_t the last layer's output (the library, like fastai, takes the mean over batch, time and units
# where the paper writes an L2 norm):
#
# $$\mathcal{L} = \mathcal{L}_{\text{CE}} + \alpha\, \overline{(m \odot h_t)^2}
# + \beta\, \overline{(h_t - h_{t-1})^2} .$$
# %%
from ulmfit.model.regularizers import activation_penalty, temporal_penalty

raw = torch.randn(4, 10, 8)                                                  # (B, T, H) last layer, before dropout
dropped = LockedDropout(0.4).train()(raw, generator=gen())
ar_by_hand = 2.0 * (dropped ** 2).mean()
tar_by_hand = 1.0 * ((raw[:, 1:] - raw[:, :-1]) ** 2).mean()                 # h_t - h_{t-1}
assert torch.allclose(activation_penalty(dropped, 2.0), ar_by_hand)
assert torch.allclose(temporal_penalty(raw, 1.0), tar_by_hand)
smooth = raw.cumsum(dim=1) / torch.arange(1, 11).view(1, -1, 1)               # a slowly moving running mean
print(f"AR {ar_by_hand:.3f}  TAR {tar_by_hand:.3f}  | TAR of a smooth sequence: {temporal_penalty(smooth, 1.0):.3f}")
# %% [markdown]
# All five regularisers match their definitions. In the model (notebook 03) they sit at: embedding dropout →
# locked input dropout → [weight-dropped LSTM → locked hidden dropout] × L → AR/TAR in the training loss.
# %% [include] _runs.py
# %% [markdown]
# ## What they do: the train/valid gap with and without them
#
# Proving the code right is half the lesson; the other half is what the regularisers *buy*. Below, the same small
# LSTM language model (2 layers, 256 hidden units, a 2,000-piece tokenizer) is trained twice on a small slice of
# WikiText-2 (full mode: ~30k words, 20 epochs; QUICK: ~10k words, 4 epochs), once with every regulariser at the AWD
# strengths (`dropout_scale=1`, AR α = 2, TAR β = 1) and once with none (`dropout_scale=0`, α = β = 0). Weight decay
# (0.01) and everything else are the same. A small corpus and many epochs make overfitting quick to see. Look at the
# valid curve of the unregularised model: it stops falling (or turns up) while its train loss keeps dropping.
# %%
from IPython.display import Markdown

from ulmfit.data.dataspec import lm_documents


def word_slice(docs, n_words):
    out, total = [], 0
    for doc in filter(str.strip, docs):
        if total >= n_words:
            break
        out.append(doc)
        total += len(doc.split())
    return out


wt2 = lm_documents(DataSpec(dataset="wikitext2"))
n_words, n_epochs = (10_000, 4) if QUICK else (30_000, 20)
gap_data = DataSpec.from_texts(word_slice(wt2["train"], n_words), word_slice(wt2["valid"], 20_000))
GAP_MODEL = ["emb_size=128", "hidden_size=256", "n_layers=2", "tokenizer.vocab_size=2000", "batch_size=16",
             "bptt=35", "lr=3e-3", f"epochs={n_epochs}"]
GAP_VARIANTS = {"AWD regularisers": ["dropout_scale=1.0", "ar_alpha=2", "tar_beta=1"],
                "none": ["dropout_scale=0.0", "ar_alpha=0", "tar_beta=0"]}
gap_runs = {name: run_once(RUNS / f"nb02-gap-{name.split()[0].lower()}", pretrain,
                           apply_overrides(preset("small", "pretrain"), GAP_MODEL + extra), gap_data)
            for name, extra in GAP_VARIANTS.items()}
# %% [markdown]
# The curves: train loss as logged — every 10 steps, the mean over the steps since the current epoch began (what the
# progress bar shows), so each epoch starts a new average and the curve has a sawtooth at epoch boundaries; and
# *with* the dropouts on for the regularised model, so its train loss overstates what the same weights score without
# them — and the validation loss at the end of each epoch, always with the dropouts off. The two are therefore not
# like for like: a "gap" below zero means only that dropout costs more on train than overfitting does on valid.
# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
gap_rows = []
for colour, (name, run_dir) in zip(("C2", "C3"), gap_runs.items()):
    records = read_metrics(run_dir)
    train = [r for r in records if r["kind"] == "train"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    steps_per_epoch = epochs[0]["step"]
    ax1.plot([r["step"] / steps_per_epoch for r in train], [r["loss"] for r in train], color=colour, alpha=0.5,
             label=f"{name}: train")
    ax1.plot([r["step"] / steps_per_epoch for r in epochs], [r["valid_loss"] for r in epochs], "o-", color=colour,
             label=f"{name}: valid")
    ax2.plot(range(1, len(epochs) + 1), [r["valid_loss"] - r["train_loss"] for r in epochs], "o-", color=colour,
             label=name)
    best = min(epochs, key=lambda r: r["valid_loss"])
    gap_rows.append(f"| {name} | {epochs[-1]['train_loss']:.3f} | {epochs[-1]['valid_loss']:.3f} | "
                    f"{epochs[-1]['valid_loss'] - epochs[-1]['train_loss']:+.3f} | {best['valid_loss']:.3f} "
                    f"(epoch {epochs.index(best) + 1}) | {epochs[-1]['valid_ppl']:.0f} |")
ax1.set(xlabel="epoch", ylabel="cross-entropy per token", title="train and valid loss")
ax1.legend(fontsize=8)
ax2.axhline(0, color="k", lw=0.8)
ax2.set(xlabel="epoch", ylabel="valid − train loss", title="generalisation gap")
ax2.legend(fontsize=8)
plt.tight_layout()
plt.show()
Markdown("\n".join(["| model | train loss (last epoch) | valid loss (last epoch) | gap | best valid loss | "
                     "valid ppl/token |", "|---|---|---|---|---|---|", *gap_rows]))
# %% [markdown]
# What to expect: without regularisers a model that fits the slice memorises it, so its gap opens and its validation
# loss stalls or rises; with them the train loss stays higher (the dropouts make every step harder) while the gap
# stays small — the trade AWD-LSTM makes. A second effect can show at this scale: AR keeps the activations small and
# the dropouts add noise, which can also make the *optimisation* easier, so the unregularised model may end worse on
# train and valid alike. The cell below states what this run measured. On the full WikiText-2 corpus in a 25-minute
# budget the model sees each token about once, where overfitting is not yet the problem; that is why the `small`
# pretraining preset scales the dropouts down to 0.2 (`ulmfit/config/presets.py`).
# %%
last = {name: [r for r in read_metrics(d) if r["kind"] == "epoch"][-1] for name, d in gap_runs.items()}
for name, r in last.items():
    print(f"{name:<17} train {r['train_loss']:.3f}  valid {r['valid_loss']:.3f}  gap {r['valid_loss'] - r['train_loss']:+.3f}")
lower = min(last, key=lambda n: last[n]["valid_loss"])
print(f"lower valid loss: {lower}; smaller gap: {min(last, key=lambda n: last[n]['valid_loss'] - last[n]['train_loss'])}")
# %% [markdown]
# ## Questions
#
# 1. Why does an inverted dropout mask use the value 1/(1−p) rather than 1, and what does that save at evaluation?
# 2. Which axis does each regulariser share one random draw over: locked dropout, embedding dropout, weight-drop?
# 3. Why is embedding dropout applied to rows of the embedding matrix rather than to the looked-up vectors one by one?
# 4. Weight-drop leaves some entries of the raw matrix U with a gradient of exactly zero. Which ones, and why?
# 5. AR penalises the dropped outputs and TAR the raw ones. What kind of hidden state does TAR favour?
# 6. In the gap plot, which model has the lower *train* loss, which the lower *valid* loss, and why are they not the
#    same model?
# %% [markdown]
# <details>
# <summary>Answers (open after trying the questions)</summary>
#
# 1. Scaling the kept entries by 1/(1−p) keeps the expected activation unchanged, since E[m_j x_j] = x_j. The mask
#    cell shows this: with p = 0.3 its values are 0 and 1/0.7 ≈ 1.4286, and the kept share is ≈ 0.700. At
#    evaluation every regulariser can then simply be the identity (`locked.eval()(x) == x` is asserted above). Nothing
#    has to be rescaled by (1−p) at test time, as a mask of 1s would require.
# 2. Each draws one mask per forward pass, but shares it over a different axis:
#    - Locked dropout has a (B, 1, H) mask, one per (sequence, unit), reused over all T time steps of the window.
#    - Embedding dropout has a (V, 1) mask, one per word type, reused at every position of the batch where that word
#      occurs and over all E dimensions of its row.
#    - Weight-drop has a (4H, H) mask, one per entry of U, reused at every time step and for every sequence of the
#      batch.
# 3. Dropping a row removes the word type itself: every occurrence in the batch vanishes (word 3 occurs 4 times
#    above, and the dropped types 1, 3 and 5 are zero at every position), so the model must predict from the context
#    rather than from that word (AWD-LSTM §4.3). A fresh draw per looked-up vector would drop only some occurrences,
#    like ordinary dropout on the inputs. The code does multiply the looked-up vectors, but by `row_mask[tokens]`, one
#    number per type. That equals masking the rows of E, in O(B·T·E) instead of O(V·E).
# 4. The entries where the mask M is 0. The forward uses Ũ = M ⊙ U, so ∂L/∂U = M ⊙ ∂L/∂Ũ. The same M serves every
#    time step, so a dropped entry takes part in no step, and its gradient, summed over the window, is exactly zero.
#    The cell shows 0.50 of U dropped (`weight_p=0.5`), all with a zero gradient. It also asserts that more than 90% of
#    the kept entries do get a nonzero one.
# 5. TAR penalises the step h_t − h_{t−1} of the raw last-layer output, so it favours slowly changing hidden states.
#    The cell shows it: the independent random sequence has TAR 2.320, while its running mean, which moves slowly,
#    has 0.111. AR instead keeps the (dropped) activations small (AWD-LSTM §4.6).
# 6. The unregularised model (`none`) ends with the lower train loss, 3.342 against 3.375. The AWD-regularised model
#    ends with the lower valid loss, 4.245 against 4.343 (valid perplexity per piece 70 against 77). They differ
#    because the logged train loss is the cross-entropy with the dropouts on, which makes every training step harder
#    for the regularised model. The unregularised model fits its training slice more closely but generalises worse:
#    its gap is +1.001 against +0.870, and from epoch 15 on its valid loss stays at about 4.34 while its train loss
#    keeps falling.
#
# </details>
# %% [markdown]
# ## Change this and rerun
#
# 1. **A stronger mask.** In the mask cell, change `p = 0.3` to `p = 0.7`, then rerun that cell through the picture
#    cell. Each of them reads `p`, and the asserts still hold, since both sides use the same generator. The printed
#    values should become 0 and 1/0.3 ≈ 3.33, with a kept share near 0.3. The locked-dropout picture should show
#    mostly black rows. The mean of each unit stays the same; only its noise grows.
# 2. **Same tokens, fewer epochs.** In the gap cell, change the full-mode `(30_000, 20)` in
#    `n_words, n_epochs = ...` to `(300_000, 2)`: ten times the words, a tenth of the epochs, about the same number
#    of steps. First delete the finished runs `runs/full/nb02-gap-awd` and `runs/full/nb02-gap-none`, next to the
#    notebooks (in QUICK mode, under `runs/quick/`). Otherwise `run_once` reuses them and nothing changes. Then rerun
#    the gap cell and the two code cells after it. Theory predicts that the gap stays small (or below zero, as in the
#    plot's first epochs) for both models, because each token is seen only twice and there is little to overfit. The
#    regularised model's advantage on valid should then shrink or reverse. This is the argument behind the `small`
#    pretraining preset's `dropout_scale` of 0.2 (`ulmfit/config/presets.py`).
# 3. **One regulariser family at a time.** Add a third entry to `GAP_VARIANTS`, for example
#    `"dropout only": ["dropout_scale=1.0", "ar_alpha=0", "tar_beta=0"]`. Its run goes to `runs/.../nb02-gap-dropout`,
#    named from the first word of its name. In the plotting cell, add a third colour to `("C2", "C3")`: `zip` stops
#    at the shorter argument and would silently leave the new run out. If the dropouts carry most of the effect, its
#    valid curve should lie close to the AWD model's. If AR/TAR matter too, it should lie between the two existing
#    curves.
