# %% [markdown]
# # 05 · Stage 3: the classifier — concat pooling, BPT3C, gradual unfreezing
#
# ULMFiT §3.3 puts a small head on the fine-tuned encoder: the last LSTM layer's outputs are **concat-pooled**
# (last state, max and mean over time), then two BatchNorm → Dropout → Linear blocks give the class logits. Long
# documents are read with **BPT3C** (backpropagation through time for text classification), and the pretrained
# layers are thawed one per epoch by **gradual unfreezing**, with discriminative LRs and STLR as in stage 2.
#
# **How long it runs.** Full mode, whose outputs are committed: 3.5 min on an Intel Xeon Cascade Lake, 2 cores,
# 2026-11-26, after notebook 04 has built the shared WikiText-2 LM. QUICK mode: 38 s in CI (AMD EPYC Zen 3, 2 cores,
# 2026-12-08); it trains far smaller models, so its figures differ from the ones the prose quotes.
# %% [include] _setup.py
# %% [markdown]
# ## Masked concat pooling (§3.3, eq. 4)
#
# With H = {h_1, …, h_T} the last LSTM layer's outputs over the *real* tokens of a document, eq. 4 is
#
# $$h_c = [\,h_T,\ \operatorname{maxpool}(H),\ \operatorname{meanpool}(H)\,] \in \mathbb{R}^{3E}.$$
#
# §3.3: *"As input documents can consist of hundreds of words, information may get lost if we only consider the last
# hidden state of the model."* In a right-padded batch the padding must not win the max, dilute the mean or be taken
# as the last state. Check that pooling a padded batch gives what pooling each document alone gives.
# %%
from ulmfit.model.classifier import masked_concat_pool

outputs = torch.randn(3, 7, 4)                                      # (B, T, E), documents of length 7, 4 and 2
lengths = torch.tensor([7, 4, 2])
mask = torch.arange(7)[None, :] < lengths[:, None]                  # (B, T) True at real tokens
outputs = outputs.masked_fill(~mask[..., None], 100.0)              # make the padding loud
pooled = masked_concat_pool(outputs, mask)                          # (B, 3E)
for b, n in enumerate(lengths.tolist()):
    alone = masked_concat_pool(outputs[b:b + 1, :n], torch.ones(1, n, dtype=torch.bool))
    assert torch.allclose(pooled[b], alone[0])
    h = outputs[b, :n]
    assert torch.allclose(alone[0], torch.cat([h[-1], h.max(0).values, h.mean(0)]))   # eq. 4 by hand
print("pooled", tuple(pooled.shape), "= [last | max | mean]; padded batch == each document alone")
# %% [markdown]
# The same holds for a whole classifier: with right padding the LSTM reads each document's real tokens before any
# padding, so in eval mode a padded batch gives each document the logits it gets alone.
# %%
import dataclasses

from ulmfit.model.classifier import TextClassifier
from ulmfit.config import preset

cfg = preset("tiny", "classify")
clf = TextClassifier.from_config(dataclasses.replace(cfg.model, vocab_size=1000), n_classes=2, head=cfg.head,
                                 bptt=cfg.train.bptt).eval()
docs = [torch.randint(4, 1000, (n,)) for n in (30, 11, 5)]
tokens = torch.zeros(3, 30, dtype=torch.long)                       # PAD_ID = 0
for b, d in enumerate(docs):
    tokens[b, :len(d)] = d
with torch.no_grad():
    batch_logits = clf(tokens, tokens != 0)
    alone = torch.cat([clf(d[None], torch.ones(1, len(d), dtype=torch.bool)) for d in docs])
assert torch.allclose(batch_logits, alone, atol=1e-5)
from IPython.display import Markdown

Markdown("\n".join(["| document | length | logits, padded batch | logits, alone | max abs diff |", "|---|---|---|---|---|",
                     *[f"| {b} | {len(d)} | {', '.join(f'{v:+.4f}' for v in batch_logits[b].tolist())} | "
                       f"{', '.join(f'{v:+.4f}' for v in alone[b].tolist())} | "
                       f"{(batch_logits[b] - alone[b]).abs().max().item():.1e} |" for b, d in enumerate(docs)]]))
# %% [markdown]
# ## BPT3C (§3.3)
#
# A document is read in chunks of `bptt` tokens, each starting from the previous chunk's hidden state. Only the
# last `max_len` tokens of each document feed the pooling; chunks entirely before every document's window run
# without a graph (no activations kept), so memory is bounded by `max_len`, not by the document length. The
# picture comes from `encode_in_chunks` itself (bptt = 5, max_len = 6).
# %%
from ulmfit.model.classifier import encode_in_chunks

lengths = torch.tensor([23, 18, 16])
tokens = torch.zeros(3, 23, dtype=torch.long)
for b, n in enumerate(lengths.tolist()):
    tokens[b, :n] = torch.randint(4, 1000, (n,))
mask = tokens != 0
bptt, max_len = 5, 6
kept, mask_kept = encode_in_chunks(clf.encoder, tokens, mask, bptt=bptt, max_len=max_len)
grad_from = tokens.shape[1] - kept.shape[1]
print(f"kept outputs {tuple(kept.shape)} for positions {grad_from}..{tokens.shape[1] - 1}; mask_kept {tuple(mask_kept.shape)}")
state = np.zeros(tokens.shape)                                       # 0 pad, 1 no_grad, 2 with grad, 3 pooled
state[mask.numpy()] = 1
state[:, grad_from:][mask[:, grad_from:].numpy()] = 2
state[:, grad_from:][mask_kept.numpy()] = 3
fig, ax = plt.subplots(figsize=(8, 1.8))
ax.imshow(state, cmap=plt.matplotlib.colors.ListedColormap(["white", "#bbbbbb", "#9ecae1", "#08519c"]), vmin=0, vmax=3)
for start in range(0, tokens.shape[1] + 1, bptt):
    ax.axvline(start - 0.5, color="k", lw=1)
ax.set(yticks=range(3), yticklabels=[f"doc {b} (n={n})" for b, n in enumerate(lengths.tolist())], xlabel="position")
ax.grid(False)
ax.set_title("grey: no_grad chunks · light blue: with graph · dark blue: pooled (last max_len real tokens)", fontsize=9)
plt.show()
# %% [markdown]
# The long document's first chunks only carry the hidden state forward; gradients reach back to the first chunk
# that feeds any document's pooling window, and each document pools over its own last 6 real tokens.
#
# ## Gradual unfreezing (§3.3) and the other strategies
#
# `unfreeze_plan` says which layer groups train in each epoch. ULMFiT's gradual unfreezing trains the head alone
# first and thaws one more group per epoch from the top. §3.3: *"Rather than fine-tuning all layers at once, which
# risks catastrophic forgetting, we propose to gradually unfreeze the model starting from the last layer as this
# contains the least general knowledge."* The other strategies: "full" trains everything at once, "frozen" only the head
# (feature extraction), "chain-thaw" (Felbo et al. 2017) one group at a time, then all. Here for the paper's
# 3-layer classifier (5 groups) over 6 epochs.
# %%
from ulmfit.train.schedule import unfreeze_plan

group_names = ["embedding", "lstm_0", "lstm_1", "lstm_2", "head"]
strategies = ["gradual", "full", "frozen", "chain-thaw"]
fig, axes = plt.subplots(1, 4, figsize=(11, 2.4), sharey=True)
for ax, strategy in zip(axes, strategies):
    grid = np.zeros((len(group_names), 6))
    for epoch, trainable in enumerate(unfreeze_plan(len(group_names), strategy, 6)):
        grid[trainable, epoch] = 1
    ax.imshow(grid[::-1], cmap="Greens", vmin=0, vmax=1.3, aspect="auto")
    ax.set(title=strategy, xlabel="epoch", xticks=range(6), xticklabels=range(1, 7))
    ax.grid(False)
axes[0].set(yticks=range(5), yticklabels=group_names[::-1])
plt.tight_layout()
plt.show()
# %% [markdown]
# Green = trained in that epoch. Gradual unfreezing is a staircase from the head down, so the randomly initialised
# head settles before it can push large gradients into the pretrained layers (catastrophic forgetting, §3.3).
# %% [include] _runs.py
# %% [markdown]
# ## The classifier
#
# `classify` builds the classifier on the fine-tuned clickbait LM (from notebook 04, reused), trains it with
# gradual unfreezing, one epoch per unfreezing stage (the `small` preset's 5 epochs: the head, then one more layer
# group each epoch, all of them in the last; QUICK: the `tiny` preset's 3 epochs on a seeded slice of 8,000 training
# headlines) and scores the test split. Look at the validation accuracy growing as groups thaw.
# %%
data = clickbait_data()
clf_dir = run_once(RUNS / "classify-clickbait-gradual", classify, stage_config("classify"), finetuned_lm("clickbait"), data)
meta = json.loads((clf_dir / "config.json").read_text())
for h in meta["history"]:
    print(f"epoch {h['epoch']} stage {h['stage']:<14} train loss {h['train_loss']:.3f}  valid acc {h['valid_accuracy']:.3f}")
print("test accuracy", round(meta["results"]["test_accuracy"], 4))
# %% [markdown]
# ## Using the trained classifier
#
# `TextClassifier.from_pretrained` rebuilds the model from the run dir (config + state_dict + tokenizer);
# `predict_proba` tokenizes, batches by length and returns probabilities in the input order.
# %%
from ulmfit import TextClassifier              # the classifier with from_pretrained and predict (ulmfit/predict.py)

model = TextClassifier.from_pretrained(clf_dir, baseline=False)    # ulmfit alone, without the TF-IDF mean
headlines = ["You Won't Believe What This Cat Did Next", "Senate Passes Budget Bill After Long Debate",
             "17 Things Only Introverts Will Understand", "Earthquake Strikes Northern Chile"]
probs = model.predict_proba(headlines)
for text, p in zip(headlines, probs):
    print(f"{model.label_names[p.argmax()]:<14} {p.max():.2f}  {text}")
# %% [markdown]
# ## Why this label: integrated gradients
#
# `explain.attributions` scores each token by integrated gradients (Sundararajan et al. 2017): the gradient of the
# predicted class's logit, averaged along a straight path from a blank document (every token's embedding replaced by
# the pad row) to the real one, times the embedding's change. The scores add up to the logit's change along that path
# (completeness; `delta` is what is left over), so they share out the decision among the tokens. Green pushes towards
# the label, red away from it. With x the document's embeddings and x' the blank baseline, token i's score is
#
# $$\mathrm{IG}_i = (x_i - x'_i)\cdot \frac{1}{m}\sum_{k=0}^{m} w_k\, \frac{\partial F\big(x' + \tfrac{k}{m}(x - x')\big)}
# {\partial x_i}, \quad w_0 = w_m = \tfrac{1}{2},\ w_k = 1 \text{ otherwise}, \qquad \sum_i \mathrm{IG}_i \approx F(x) - F(x').$$
#
# The weights are the trapezoid rule over the path's m + 1 points, which is what the code computes (Sundararajan et
# al. write the right Riemann sum, k = 1..m with every weight 1; the trapezoid's error shrinks as 1/m², the Riemann
# sum's as 1/m, so the same `steps` leaves a smaller `delta`).
# %%
from IPython.display import HTML, display
from ulmfit.analysis import explain

for text in headlines[:2]:
    expl = explain.attributions(model, text, steps=32)
    print(f"{expl.label} (p={expl.probability:.2f}), completeness gap {expl.delta:+.3f}")
    display(HTML(explain.to_html(expl)))
# %% [markdown]
# Read the colours as a hint, not a proof: the scores share out one logit among the tokens, and a small model's
# reasons can be odd. `clickbait.ipynb` compares this classifier with the same network trained from scratch and with
# TF-IDF, measures gradual unfreezing against full fine-tuning, and draws accuracy against the number of labels.
#
# ## Questions
#
# 1. What are the three parts of the concat-pooled vector h_c, and how long is it for a 400-d last layer?
# 2. In a right-padded batch, what would go wrong in each of the three parts if the padding were not masked?
# 3. In BPT3C, which chunks of a long document run without a graph, and what bounds the memory the classifier needs?
# 4. Under gradual unfreezing with 5 groups, which groups train in epoch 3?
# 5. What does the integrated-gradients `delta` measure, and what value would a perfect integration give?
# %% [markdown]
# <details>
# <summary>Answers (open after trying the questions)</summary>
#
# 1. h_c = [h_T, maxpool(H), meanpool(H)] (eq. 4; `masked_concat_pool`): the last LSTM layer's output at the
#    document's last real token, and the element-wise max and mean of that layer's outputs over its real tokens.
#    Each part has E dimensions, so a 400-d last layer gives 3 × 400 = 1,200, the head's input size
#    (`PoolingHead(3 * emb_size, …)`); the toy E = 4 above printed pooled (3, 12).
# 2. Right padding puts the pads after the real tokens. Unmasked, "last" would be the output at the batch's final
#    pad position (the state after reading pads) instead of h_T, a padding output could win the max (in the demo,
#    filled with 100.0, it would win every dimension of the two shorter documents), and the mean would divide by
#    T instead of n and be pulled towards the padding. Each document's vector would then depend on the longest
#    document in its batch; the asserts check that the masked version gives each document what it gets alone.
# 3. `encode_in_chunks` keeps the graph from grad_from = the earliest pooling window in the batch,
#    min over b of max(0, n_b − max_len), rounded down to a multiple of `bptt`; every chunk that starts before it
#    runs under `no_grad` and only carries (h, c) forward. In the demo the windows start at 23 − 6 = 17,
#    18 − 6 = 12 and 16 − 6 = 10, so the chunks at positions 0-4 and 5-9 run without a graph, matching the printed
#    kept outputs (3, 13, 32) for positions 10..22. Activation memory grows with the kept span T − grad_from, at
#    most max_len + (bptt − 1) + the spread of lengths in the batch (small, since batches are bucketed by length),
#    not with the document length.
# 4. `unfreeze_plan(5, "gradual", n)` trains groups range(max(0, 4 − e), 5) in epoch e + 1, so epoch 3 (e = 2)
#    trains groups 2-4: lstm_1, lstm_2 and the head, with the embedding and lstm_0 still frozen. The classifier run
#    above shows the same: "epoch 3 stage lstm_1..head".
# 5. `delta` = (sum of the token scores) − (F(x) − F(x')), with F the predicted class's logit and x' the blank
#    document: how far the finite trapezoid sum over `steps` + 1 path points misses the completeness identity.
#    A perfect (exact) integration gives 0. The printed gaps at steps=32 are −0.341 and +0.115; the token scores
#    in the HTML (the hover titles) sum to 10.76 and −0.55, so the logit changes were about 10.76 + 0.341 ≈ 11.10
#    and −0.55 − 0.115 ≈ −0.67, a gap of about 3% of the first change but about 17% of the second.
#
# </details>
# %% [markdown]
# ## Change this and rerun
#
# 1. **Integration steps** (no training; seconds). In the integrated-gradients cell change `steps=32` in
#    `explain.attributions(model, text, steps=32)` to `steps=8`, then `steps=128`, and rerun only that cell. Look
#    at the printed completeness gap: the trapezoid rule's error shrinks as 1/m² for a smooth path, so 4× the
#    steps should cut |delta| several-fold; the network's ReLU, max-pooling and BatchNorm put kinks along the path,
#    so expect a less regular decrease. Once the gap is small, the colours should hardly change.
# 2. **The BPT3C window** (no training). In the BPT3C cell change `bptt, max_len = 5, 6` to `5, 12`, then to
#    `4, 6`, and rerun it. By `encode_in_chunks`' rule, with max_len 12 the windows start at 11, 6 and 4, so
#    grad_from = 4 // 5 × 5 = 0: no grey chunk is left and all 23 positions keep their graph; with bptt 4,
#    grad_from = 10 // 4 × 4 = 8, so positions 8-9 keep a graph without being pooled. What is kept follows
#    max_len and the chunk boundaries, not the document length.
# 3. **Too few epochs for the plan** (no training). In the `unfreeze_plan` cell change the last argument of
#    `unfreeze_plan(len(group_names), strategy, 6)` from 6 to 3 (leave the grid's 6 columns; the last three stay
#    white) and rerun it. Gradual unfreezing then never thaws lstm_0 or the embedding (the docstring: with fewer
#    epochs than groups the lowest groups never thaw), and chain-thaw keeps its final all-groups epoch by dropping
#    single-group stages. This is why the classifier above needs its 5 epochs for 5 groups: only in epoch 5 does
#    the embedding train.
