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
