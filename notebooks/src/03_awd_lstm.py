# %% [markdown]
# # 03 · The AWD-LSTM encoder and its tied language-model head
#
# ULMFiT's backbone is the AWD-LSTM (Merity, Keskar & Socher 2017; ULMFiT §3.1): an embedding, L weight-dropped LSTM
# layers and a decoder whose weight *is* the embedding matrix (weight tying, AWD-LSTM §4.4: it *"prevents the model
# from having to learn a one-to-one correspondence between the input and output"* and cuts the parameter count).
# With e_t the embedding of token w_t and E the (V, E) embedding matrix, the LM computes
#
# $$h^{(0)}_t = e_t,\qquad h^{(l)}_t = \mathrm{LSTM}_l\big(h^{(l-1)}_t,\ h^{(l)}_{t-1}\big),\qquad
# p(w_{t+1}\mid w_{\le t}) = \operatorname{softmax}\big(E\,h^{(L)}_t + b\big),$$
#
# so the last layer's size must equal the embedding size E. This notebook builds
# the `tiny` one, follows the shapes through it, shows that the hidden state is explicit, lists the layer groups
# used for discriminative fine-tuning, counts parameters per preset and trains a tiny LM for a few steps.
#
# Shapes are batch-first: B batch, T time, E embedding size, H hidden size, V vocabulary, L layers.
#
# **How long it runs.** Full mode, whose outputs are committed: 12 s on an AMD EPYC Zen 3 (AVX2 only), 2 cores,
# 2026-12-08. QUICK mode: 11 s in CI (AMD EPYC Zen 3, 2 cores, 2026-12-08); it trains far smaller models, so its
# figures differ from the ones the prose quotes.
# %% [include] _setup.py
# %% [markdown]
# ## Build it from the config
#
# The model is built from a `ModelConfig` dataclass (here the `tiny` preset with a 1,000-token vocabulary). Look at
# the sizes: E → H → … → H → E, so that the last layer's output can feed a decoder tied to the (V, E) embedding.
# %%
import dataclasses

from ulmfit.model.awd_lstm import LanguageModel, layer_sizes
from ulmfit.config import preset

config = dataclasses.replace(preset("tiny", "pretrain").model, vocab_size=1000)
model = LanguageModel(config)
print(model)
print("LSTM (input, output) sizes:", layer_sizes(config))
assert model.decoder.weight is model.encoder.embedding.weight        # tied: one Parameter, two uses
# %% [markdown]
# ## Shapes through one forward pass
#
# `forward(tokens, hidden)` returns the logits and, per layer, the raw outputs (before dropout, read by TAR), the
# dropped outputs (read by AR and the decoder) and the new hidden state (h, c), each (1, B, H_l).
# %%
tokens = torch.randint(4, 1000, (4, 10))                             # (B, T)
out = model(tokens)
print("logits          ", tuple(out.logits.shape), "(B, T, V)")
for layer, (raw, dropped, (h, c)) in enumerate(zip(out.raw_outputs, out.dropped_outputs, out.hidden)):
    print(f"layer {layer}: raw {tuple(raw.shape)}  dropped {tuple(dropped.shape)}  h {tuple(h.shape)}  c {tuple(c.shape)}")
# %% [markdown]
# ## Inside one LSTM layer: the gate equations the fused kernel computes
#
# Each `WeightDropLSTM` calls torch's fused LSTM kernel (oneDNN on CPU, cuDNN on a GPU) once per window; the kernel
# runs these equations for t = 1 … T inside C++ (Hochreiter & Schmidhuber 1997, in torch's `nn.LSTM` form, gate
# order i, f, g, o; σ is the logistic sigmoid, ⊙ the elementwise product):
#
# $$\begin{aligned}
# i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) &&\text{input gate: how much of the candidate to write}\\
# f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) &&\text{forget gate: how much of the old cell to keep}\\
# g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) &&\text{candidate cell content}\\
# o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) &&\text{output gate: how much of the cell to show}\\
# c_t &= f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)
# \end{aligned}$$
#
# ```
#            c_{t-1} ──(×f_t)──(+)───────────────┬──────────────> c_t
#                                 │               │
#                            (i_t × g_t)        tanh
#                                 │               │
#   x_t, h_{t-1} ──> [ i  f  g  o  = 4 affine maps + σ/tanh ]   (× o_t) ──> h_t  (the layer's output at t)
# ```
#
# The four W_{i·} stack into `weight_ih` (4H, I) and the four W_{h·} into `weight_hh_raw` (4H, H), i, f, g, o from
# top to bottom. Weight-drop (notebook 02) masks `weight_hh_raw`, so the same dropped W_h serves every step t of the
# window: DropConnect on the recurrence, with the kernel left untouched. The cell below computes the first layer's
# outputs step by step with these equations, a Python loop over time that is for reading only (it is what the
# kernel does in one call), and checks them against the layer.
# %%
layer = model.encoder.rnns[0].eval()                                 # eval: the raw W_h, no weight-drop mask
x = torch.randn(2, 5, layer.input_size)                              # (B, T, I)
h = c = torch.zeros(2, layer.hidden_size)                            # (B, H)
steps = []
for t in range(x.shape[1]):
    gates = x[:, t] @ layer.weight_ih.T + layer.bias_ih + h @ layer.weight_hh_raw.T + layer.bias_hh   # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    steps.append(h)
by_hand = torch.stack(steps, dim=1)                                  # (B, T, H)
with torch.no_grad():
    fused, (h_n, c_n) = layer(x, (torch.zeros(1, 2, layer.hidden_size), torch.zeros(1, 2, layer.hidden_size)))
print("by hand vs fused kernel, largest difference:", f"{(by_hand - fused).abs().max().item():.1e}")
print("last h and c match the returned state:", torch.allclose(h, h_n[0], atol=1e-6), torch.allclose(c, c_n[0], atol=1e-6))
assert torch.allclose(by_hand, fused, atol=1e-5)
model.train()
# %% [markdown]
# ## The hidden state goes in and comes out
#
# The module keeps no state of its own. Reading a sequence in two halves, passing the first half's hidden state to
# the second, gives exactly the outputs of reading it whole (in eval mode, where no dropout mask is drawn). This is
# what the training loop relies on when it carries the state from one BPTT window to the next and detaches it.
# %%
from ulmfit.model.awd_lstm import detach_hidden

model.eval()
with torch.no_grad():
    whole = model(tokens).logits
    first = model(tokens[:, :6])
    second = model(tokens[:, 6:], detach_hidden(first.hidden))
    halves = torch.cat([first.logits, second.logits], dim=1)
    fresh = model(tokens[:, 6:]).logits                             # hidden=None: a new stream from zeros
print("two halves with the state carried == whole:", torch.allclose(halves, whole, atol=1e-5))
print("second half from a zero state differs by", f"{(fresh - whole[:, 6:]).abs().max().item():.3f}")
assert torch.allclose(halves, whole, atol=1e-5)
model.train()
# %% [markdown]
# ## Layer groups (ULMFiT §3.2)
#
# Discriminative fine-tuning gives each layer group its own learning rate. The LM's groups run bottom → top as in
# fastai: one per LSTM layer, then the tied embedding/decoder weight with the decoder bias. Every parameter appears
# exactly once (the tied weight too).
# %%
groups = model.layer_groups()
for name, params in groups:
    print(f"{name:<10} {sum(p.numel() for p in params):>8,} parameters in {len(params)} tensors")
assert sum(p.numel() for _, ps in groups for p in ps) == sum(p.numel() for p in model.parameters())
# %% [markdown]
# ## Parameter counts per preset
#
# With weight tying the embedding is counted once. The `paper` size (400 / 1152 / 3 layers) is the one ULMFiT
# pretrained on WikiText-103, there over fastai's 60,000-word vocabulary (notebook 01); our `paper` preset pairs it
# with 30,000 subword pieces, so its embedding is half that size. Look at how much of the model is embedding.
# %%
from IPython.display import Markdown

rows = ["| preset | V | E | H | L | embedding | LSTMs | total |", "|---|---|---|---|---|---|---|---|"]
for name in ("tiny", "small", "paper"):
    c = preset(name, "pretrain")
    m = LanguageModel(dataclasses.replace(c.model, vocab_size=c.tokenizer.vocab_size))
    emb = m.encoder.embedding.weight.numel()
    lstm = sum(p.numel() for p in m.encoder.rnns.parameters())
    total = sum(p.numel() for p in m.parameters())
    rows.append(f"| {name} | {c.tokenizer.vocab_size:,} | {c.model.emb_size} | {c.model.hidden_size} | "
                f"{c.model.n_layers} | {emb:,} | {lstm:,} | {total:,} |")
    del m
Markdown("\n".join(rows))
# %% [markdown]
# ## A tiny LM, trained for a few steps
#
# A plain loop (for teaching: `ulmfit.train.loop.fit` is the real one) on 120 WikiText-2 articles: cross-entropy plus
# AR and TAR, the hidden state carried across windows and detached, gradients clipped. Look for the loss falling
# below ln(V) ≈ 6.9, the loss of a uniform guess.
# %%
import torch.nn.functional as F

from ulmfit.text.batching import LMBatches
from ulmfit.config import TokenizerConfig
from ulmfit.pipeline import DataSpec, lm_documents
from ulmfit.model.regularizers import activation_penalty, temporal_penalty
from ulmfit.text.tokenizer import Tokenizer

docs = lm_documents(DataSpec(dataset="wikitext2"))["train"][:120]
tokenizer = Tokenizer.train(docs, TokenizerConfig(vocab_size=1000), RUNS / "nb03-tokenizer")
ids, offsets = tokenizer.encode_corpus(docs, RUNS / "nb03-tokenizer" / "train")
lm = LanguageModel(dataclasses.replace(config, vocab_size=tokenizer.vocab_size))
optimizer = torch.optim.AdamW(lm.parameters(), lr=3e-3, betas=(0.8, 0.99), weight_decay=0.01)
batches = LMBatches(ids, offsets, batch_size=16, bptt=20, shuffle=True, seed=0)
losses, hidden = [], None
for step, (x, y) in enumerate(batches):
    out = lm(x, hidden)
    hidden = detach_hidden(out.hidden)                               # carry the state, cut the graph
    ce = F.cross_entropy(out.logits.flatten(0, 1), y.flatten())
    loss = ce + activation_penalty(out.dropped_outputs[-1], 2.0) + temporal_penalty(out.raw_outputs[-1], 1.0)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(lm.parameters(), 0.4)
    optimizer.step()
    losses.append(ce.item())
    if step == (60 if QUICK else 400):
        break
plt.plot(losses)
plt.axhline(np.log(tokenizer.vocab_size), color="k", ls="--", lw=1, label="ln V (uniform guess)")
plt.xlabel("step")
plt.ylabel("cross-entropy (nats / token)")
plt.legend()
plt.show()
# %% [markdown]
# The loss falls below the uniform guess within a few dozen steps: the model first learns the piece frequencies,
# then short-range context. Notebook 04 trains the same model through the real pipeline.
# %% [markdown]
# ## Questions
#
# 1. Why must the last LSTM layer's hidden size equal the embedding size in a weight-tied LM?
# 2. Which outputs does the forward pass return per layer, and which regulariser reads each of them?
# 3. Reading a sequence in two halves gives the same logits as reading it whole only in eval mode. Why not in training?
# 4. Why is the tied embedding/decoder weight counted once, and in which layer group does it sit?
# 5. What loss does a model that guesses uniformly over V pieces have, and why does training beat it within a few
#    dozen steps?
# %% [markdown]
# <details>
# <summary>Answers (open after trying the questions)</summary>
#
# 1. The decoder computes E h^{(L)}_t + b with the (V, E) embedding matrix as its weight. Its input, the last
#    layer's output, must therefore have E units. `layer_sizes` makes the stack E → H → … → H → E, printed above as
#    [(32, 64), (64, 32)] for `tiny`. Only the outputs of the lower layers use H; that the two sizes can differ is
#    AWD-LSTM §4.5.
# 2. Per layer, the forward returns three things:
#    - the raw output (B, T, H_l), taken before dropout; TAR reads the last layer's;
#    - the dropped output, after locked dropout (`dropout_hidden` between layers, `dropout_output` after the last;
#      p = 0.15 and 0.1 in the printed model); AR reads the last layer's, and so does the decoder;
#    - the new hidden state (h, c), each (1, B, H_l), which the loop carries to the next window.
#
#    Embedding dropout, input dropout and weight-drop act inside the forward and read none of these outputs.
# 3. In training mode every forward draws fresh masks: the embedding dropout, the locked dropouts and the
#    weight-dropped U. Reading the sequence whole uses one set of masks for all 10 steps. Reading it in two halves
#    draws two different sets, so the logits differ. Eval mode draws no masks, so the two readings compute the same
#    function.
# 4. The decoder's weight *is* the embedding's Parameter object, and `model.parameters()` yields a shared Parameter
#    only once; `layer_groups` likewise adds `decoder.weight` only when it is not the embedding weight. It sits in the
#    top group, `embedding`, with the decoder bias: 33,000 parameters in 2 tensors, that is 1000 × 32 + 1000. Adding
#    the two LSTM groups gives 25,088 + 12,544 + 33,000 = 70,632, the `tiny` total in the table. As the top group, it
#    is the one trained first when the LM is fine-tuned with the rest frozen, and the one given the highest
#    discriminative LR (ULMFiT §3.2).
# 5. A uniform guess over V pieces has a cross-entropy of ln V = ln 1000 ≈ 6.9 nats per token. A freshly built model
#    is close to that (a zero decoder bias and small weights give nearly equal logits), so the curve starts at the
#    dashed line. Piece frequencies are far from uniform, so learning just the unigram distribution (through the
#    decoder bias and the tied embedding) already beats ln V. The curve is well below the line within a few dozen
#    steps, before the model learns short-range context.
#
# </details>
# %% [markdown]
# ## Change this and rerun
#
# 1. **Untie the decoder.** In the build cell, add `tie_weights=False` to the `dataclasses.replace(...)` call that
#    makes `config`. Delete that cell's `assert model.decoder.weight is ...`, which now fails by design. Then rerun it
#    and the cells after it. The `embedding` layer group should hold 3 tensors and 32,000 + 32,000 + 1,000 = 65,000
#    parameters, since the decoder now has its own (V, E) matrix. The training cell builds `lm` from the same
#    `config`, so it trains untied. AWD-LSTM §4.4 reports that tying improves perplexity as well as cutting the
#    parameter count (after Inan et al. 2016 and Press & Wolf 2017), so the untied curve should be no better. Over
#    400 noisy steps the difference may not show, which is worth seeing too.
# 2. **State carry-over in training mode.** In the hidden-state cell, change `model.eval()` to `model.train()`, then
#    rerun that cell. The first print should say `False` and the `assert` should fail: fresh dropout masks are drawn
#    for each call (question 3). `torch.no_grad()` does not switch dropout off; only eval mode does.
# 3. **A bigger vocabulary.** In the training cell, change `TokenizerConfig(vocab_size=1000)` to `vocab_size=4000`,
#    then rerun that cell. The dashed ln V line moves up to ln 4000 ≈ 8.3, and the model adapts through
#    `tokenizer.vocab_size`. Expect the per-token loss curve to sit higher, but do not read that as a worse model.
#    Each piece now covers more text and is chosen from more candidates, so losses per token are not comparable
#    across vocabularies. Comparing them needs a per-word measure such as the pipeline's `valid_ppl_word` (notebook 04).
