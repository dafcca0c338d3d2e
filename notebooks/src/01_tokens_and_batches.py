# %% [markdown]
# # 01 · Tokens and batches
#
# How text becomes the `(x, y)` windows an AWD-LSTM language model trains on (ULMFiT §3.1, AWD-LSTM §4.1):
# pre-rules → SentencePiece pieces → one numericalised stream → B parallel rows → BPTT windows of random length.
#
# **How long it runs.** Full mode, whose outputs are committed: 32 s on an AMD EPYC Zen 3 (AVX2 only), 2 cores,
# 2026-12-08. QUICK mode: 29 s in CI (AMD EPYC Zen 3, 2 cores, 2026-12-08); it trains far smaller models, so its
# figures differ from the ones the prose quotes.
# %% [include] _setup.py
# %% [markdown]
# ## Pre-rules
#
# fastai's pre-rules (used by ULMFiT) replace case and repetition by marker tokens, so that "The", "the" and "THE"
# share one embedding: `xxmaj` marks a capitalised word, `xxup` an all-caps one, `xxrep n c` a character repeated
# n times. Look at the markers in the middle line and at what `undo_rules` gives back.
# %%
from ulmfit.text.tokenizer import apply_rules, undo_rules

text = "The BBC said it was a VERY good day!!!! Sooo good.\nA second line &amp; a <br />break."
print(text, "\n---")
print(apply_rules(text), "\n---")
print(undo_rules(apply_rules(text)))
# %% [markdown]
# ## A SentencePiece tokenizer
#
# `Tokenizer.train` fits a SentencePiece unigram model on the pre-ruled lines (here 120 WikiText-2 articles, a
# 1,000-piece vocabulary, a few seconds). Ids 0–3 are fixed: pad, unk, bos, eos, and every marker is one piece.
# %%
from ulmfit.config import TokenizerConfig
from ulmfit.pipeline import DataSpec, lm_documents
from ulmfit.text.tokenizer import Tokenizer

docs = lm_documents(DataSpec(dataset="wikitext2"))
print({split: len(d) for split, d in docs.items()}, "articles;  the first one starts:")
print(docs["train"][1][:300])
tokenizer = Tokenizer.train(docs["train"][:120], TokenizerConfig(vocab_size=1000), RUNS / "nb01-tokenizer")
print("vocab", tokenizer.vocab_size, "| first pieces:", [tokenizer.sp.id_to_piece(i) for i in range(12)])
# %% [markdown]
# A document is `BOS + pieces(line 1) + EOS + pieces(line 2) + EOS ...`: EOS ends every line, so it is also what
# per-word perplexity counts as one extra "word" per line (an HTML `<br />` becomes a line break). Check that the round trip gives the text back (up to
# whitespace around punctuation, which the pre-rules normalise).
# %%
ids = tokenizer.encode_document(text)
print(ids)
print([tokenizer.sp.id_to_piece(i) for i in ids])
decoded = tokenizer.decode(ids)
print(repr(decoded))
assert ids[0] == 2 and ids.count(3) == apply_rules(text).count("\n") + 1   # one BOS; one EOS per line (<br /> too)
assert decoded.split() == undo_rules(apply_rules(text)).split()
# %% [markdown]
# ## fastai's word tokens: the published WikiText-103 LM's vocabulary
#
# The LM that the paper starts from (fastai's `wt103-fwd`, `ulmfit lm download`) reads fastai's *word* tokens:
# spaCy's English tokenizer plus fastai's rules (`xxbos` first, `xxmaj`/`xxup` for case, `xxrep`, HTML fixes),
# 60,000 words, and everything else is `xxunk`. `FastaiTokenizer` reproduces it token for token (checked against
# fastai 2.8.12 on 11,132 real texts, `benchmarks/results/fastai_tokenizer_agreement.txt`). Compare its tokens
# with the SentencePiece pieces above: whole words, a `\n` token for the line break, and no EOS per line.
# %%
from ulmfit.errors import UlmfitError
from ulmfit.text.fastai_tokenizer import FastaiTokenizer

try:
    words = FastaiTokenizer(["xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj"])
    print(words.tokenize(text))
except UlmfitError as e:                    # spaCy is an optional extra: pip install 'ulmfit[fastai]'
    print(e)
# %% [markdown]
# ## How many pieces? The vocabulary-size trade-off, measured
#
# A subword vocabulary trades the length of a sequence against the size of a table. With few pieces a word splits
# into several: longer sequences (more LSTM steps per sentence, more of the model spent gluing fragments back
# together) but a small (V, E) embedding and softmax. With many, most words are one piece: shorter sequences, but
# an embedding and a softmax that grow with V, and rare pieces that each get few training updates. The cell trains
# the tokenizer at four sizes on the same 300 articles and counts pieces per word on 20 held-out articles, with
# what the embedding would cost at the `small` preset's E.
# %%
import json

from IPython.display import Markdown

from ulmfit.config import preset

held_out = docs["valid"][:20]
n_words = sum(len(doc.split()) for doc in held_out)          # WikiText's words: split on spaces
emb_size = preset("small", "pretrain").model.emb_size
rows = [f"| pieces V | pieces per word | embedding parameters at E = {emb_size} |", "|---|---|---|"]
for vocab in (250, 1000, 4000, 8000):
    tok = Tokenizer.train(docs["train"][:300], TokenizerConfig(vocab_size=vocab), RUNS / f"nb01-vocab{vocab}")
    n_pieces = sum(len(tok.encode_document(doc)) for doc in held_out)
    rows.append(f"| {tok.vocab_size:,} | {n_pieces / n_words:.2f} | {tok.vocab_size * emb_size:,} |")
Markdown("\n".join(rows))
# %% [markdown]
# From 250 to 8,000 pieces the held-out text needs about half as many pieces (2.86 → 1.49 a word) while the
# embedding grows 32-fold, and past 4,000 the sequences barely shorten (1.60 → 1.49) for twice the table; the counts
# include one BOS per article and one EOS per line. Which size pays off downstream is a question for the whole pipeline, not
# for the tokenizer: `benchmarks/lm_size_vocab.py` pretrained LMs of the shipped size for 15 CPU-minutes each, with
# 8,000 SentencePiece pieces and with fastai's kind of vocabulary (30,000 words), then fine-tuned classifiers from
# each on three development sets. The cell reads its results.
# %%
size_vocab = [json.loads(line) for line in open(Path("..") / "benchmarks" / "results" / "lm_size_vocab.jsonl")]
rows = ["| pretrained LM | V | parameters | tokens seen in 15 min | mean validation accuracy of `ulmfit fit` |",
        "|---|---|---|---|---|"]
for lm_row in (r for r in size_vocab if r["kind"] == "lm"):
    fits = [r["valid_ulmfit"] for r in size_vocab if r["kind"] == "fit" and r["variant"] == lm_row["variant"]]
    rows.append(f"| {lm_row['variant']} | {lm_row['vocab']:,} | {lm_row['params']:,} | {lm_row['tokens_seen']:,} | "
                f"{np.mean(fits):.1%} |")
Markdown("\n".join(rows))
# %% [markdown]
# At the same compute the 30,000-word vocabulary made a model with more than twice the parameters (most of them
# embedding and softmax), which saw about a third of the tokens in its 15 minutes, and its classifiers came out
# behind the 8,000-piece ones: that is why ulmfit's shipped LM uses 8,000 pieces. With a GPU's compute the answer
# may move towards larger vocabularies, as the paper's 60,000 words suggest.
# %% [markdown]
# ## A numericalised corpus
#
# `encode_corpus` writes the whole corpus as one flat id array plus document offsets (`uint16` when the vocabulary
# fits), read back memory-mapped, so even WikiText-103 never sits in Python lists. Document i is
# `ids[offsets[i]:offsets[i+1]]`; each starts with BOS.
# %%
from ulmfit.text.corpus import load_corpus

tokenizer.encode_corpus(docs["train"][:120], RUNS / "nb01-corpus" / "train")
ids, offsets = load_corpus(RUNS / "nb01-corpus" / "train")
print(type(ids).__name__, ids.dtype, ids.shape, "| offsets", offsets[:5], "...", offsets[-1])
print("tokens per article: median", int(np.median(np.diff(offsets))), "| first tokens of article 1:",
      tokenizer.decode(ids[offsets[1]:offsets[1] + 40]))
assert all(ids[o] == 2 for o in offsets[:-1])
# %% [markdown]
# ## Folding the stream (AWD-LSTM §4.1)
#
# The stream of N tokens is cut into B contiguous rows, `(B, N // B)`, and read left to right in windows of about
# `bptt` columns. Row b of window k+1 continues row b of window k, which is why the hidden state can be carried
# from one batch to the next. In the picture each cell holds its position in the stream; the boxes are the windows.
# %%
from ulmfit.text.batching import LMBatches, fold_stream

toy = np.arange(26)
folded = fold_stream(toy, 4)                                       # (4, 6): "24 25" (N mod B) are dropped
toy_batches = list(LMBatches(toy, np.array([0, 26]), batch_size=4, bptt=3, shuffle=False, seed=0,
                             variable_length=False))
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.imshow(folded, cmap="Blues", vmin=-10, vmax=30)
for (r, c), v in np.ndenumerate(folded):
    ax.text(c, r, str(v), ha="center", va="center")
col = 0
for k, (x, y) in enumerate(toy_batches):
    T = x.shape[1]
    ax.add_patch(plt.Rectangle((col - 0.45, -0.45), T - 0.1, 3.9, fill=False, lw=2, ec=f"C{k + 1}",
                               label=f"window {k}: x is (B={x.shape[0]}, T={T})"))
    col += T
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
ax.set(xlabel="column (time)", ylabel="row (batch)", xticks=range(folded.shape[1]), yticks=range(4))
ax.grid(False)
plt.show()
for k, (x, y) in enumerate(toy_batches):
    print(f"window {k}: x =", x.tolist(), " y =", y.tolist())
# %% [markdown]
# The targets `y` are the inputs moved one step along each row, so the last column of the fold (5, 11, 17, 23) is
# only ever a target.
#
# ## Variable-length BPTT (AWD-LSTM §4.1)
#
# With a fixed window the same tokens would always sit at the same window position. AWD-LSTM draws each window's
# length from N(bptt, 5) with probability 0.95 and from N(bptt/2, 5) otherwise (floored at 5, capped at bptt + 20);
# the loop scales the LR by `seq_len / bptt`:
#
# $$\ell \sim \begin{cases} \mathcal{N}(bptt, 5^2) & \text{with probability } 0.95 \\
# \mathcal{N}(bptt/2, 5^2) & \text{otherwise} \end{cases}, \qquad \eta_{window} = \eta \cdot \ell / bptt .$$
#
# AWD-LSTM §4.1: *"an element of the data may never be able to improve itself through backpropagation if it is always
# the first element of a window."* Look for the two bumps.
# %%
from ulmfit.text.batching import sample_bptt_length

rng = np.random.default_rng(0)
lengths = [sample_bptt_length(70, rng) for _ in range(20_000)]
plt.hist(lengths, bins=range(0, 95), color="C0")
plt.axvline(70, color="k", ls="--", lw=1)
plt.xlabel("window length (tokens), bptt = 70")
plt.ylabel("windows")
plt.title("sample_bptt_length")
plt.show()
print(f"mean {np.mean(lengths):.1f}, share below 50: {np.mean(np.array(lengths) < 50):.3f}")
# %% [markdown]
# Most windows are ~70 tokens long; ~5% are about half that, which moves the window boundaries every epoch.
#
# ## Real batches
#
# The same `LMBatches` over the numericalised articles, shuffled per epoch (the document order depends only on the
# seed and the epoch). Check that each window's `y` is `x` shifted by one and that row 0 of window 1 starts where
# row 0 of window 0 stopped.
# %%
batches = LMBatches(ids, offsets, batch_size=8, bptt=20, shuffle=True, seed=0)
it = iter(batches)
(x0, y0), (x1, y1) = next(it), next(it)
print(f"{len(batches)} windows per epoch over {batches.n_tokens:,} tokens; shapes {tuple(x0.shape)}, {tuple(x1.shape)}")
assert torch.equal(x0[:, 1:], y0[:, :-1]) and torch.equal(y0[:, -1], x1[:, 0])
print("row 0, window 0:", tokenizer.decode(x0[0]))
print("row 0, window 1:", tokenizer.decode(x1[0]))
# %% [markdown]
# ## Questions
#
# 1. Why does the tokenizer see the text only after the pre-rules, and what do the rules add to it?
# 2. A stream of 26 tokens folded into 4 rows: which tokens are dropped, and which are only ever targets?
# 3. Why can the hidden state be carried from window k to window k+1 of the same row?
# 4. What problem does a variable window length solve that a fixed one has, and why does the LR scale with it?
# 5. What would go wrong if `y` were not `x` moved one step along each row?
# %% [markdown]
# <details>
# <summary>Answers (open after trying the questions)</summary>
#
# 1. `Tokenizer.train` fits SentencePiece on `apply_rules(doc)`, and `encode_document` applies the same rules before
#    encoding, so the pieces are learned from the very text they later cut. The rules fix HTML and WikiText escapes
#    (`&amp;` → `&`, `<br />` → a line break, hence an EOS; ` @-@ ` → `-`), lower-case words behind `xxmaj`
#    (capitalised) or `xxup` (all caps), and write 4+ repeats of a character as `xxrep n c` (`!!!!` → `xxrep 4 !`;
#    `Sooo` has only 3 o's, so it stays, where fastai's own rules, 3+, give `xxrep 3 o`) and repeated words as
#    `xxwrep`. So "The" and "the" share the piece `▁the`, and each marker is one user-defined piece (ids 4–8 above).
#
# 2. 26 // 4 = 6 columns, so 4 × 6 = 24 tokens are kept and 24 and 25 (26 mod 4 = 2) are dropped. The last column,
#    5, 11, 17, 23, is only ever a target (the windows' inputs stop at column 4: T = 3, then 2), and by the same
#    shift the first column, 0, 6, 12, 18, is only ever an input.
#
# 3. Row b of window k+1 is the text that directly follows row b of window k in the stream (the cell asserts
#    `y0[:, -1] == x1[:, 0]`), so the final hidden state of row b is exactly the context the next window's row b
#    needs. `LMTask.step` detaches it (backprop stops at the window edge: truncated BPTT), and `reset_carry` sets it
#    back to zeros only after each epoch, when the stream is reshuffled and the rows no longer continue.
#
# 4. With fixed windows the boundaries fall on the same tokens every time the same stream is read, and the
#    prediction at a window's first position can backpropagate into one input step only (the carried state is
#    detached), so those positions never train the context behind them (AWD-LSTM §4.1); random lengths, drawn anew
#    per epoch from (seed, epoch), move the boundaries.
#    The loss is a mean over the B × T targets, so with a fixed LR a short window would move the weights as much as
#    a long one, favouring short sequences; scaling the LR by `seq_len / bptt` (AWD-LSTM §4.1) makes each step count
#    in proportion to the tokens it saw.
#
# 5. The model would no longer learn p(next token | past tokens), the objective the LM is pretrained on: with
#    `y = x` the LSTM reads the token it must predict, so it can learn to copy its input and drive the loss towards
#    0 (a perplexity towards e⁰ = 1) while learning nothing about language. `LMBatches` gets the shift right by
#    gathering T + 1 positions per row and returning `tokens[:, :-1], tokens[:, 1:]`.
#
# </details>
# %% [markdown]
# ## Change this and rerun
#
# 1. **The toy fold.** In the "Folding the stream" cell, set `batch_size=5` in `LMBatches(...)` and `5` in
#    `fold_stream(toy, 5)`, and rerun that cell. Expect 26 // 5 = 5 columns, so only token 25 is dropped, the
#    targets-only column becomes 4, 9, 14, 19, 24, and the 4 input columns split into windows of T = 3 and T = 1
#    (the boxes are drawn 4 rows high, so read the printed windows). Then, back at `batch_size=4`, set
#    `variable_length=True`: `sample_bptt_length` floors every length at 5, and the fold has only 5 input columns,
#    so expect a single window with T = 5: the floor overrides any `bptt` below it.
# 2. **The second bump.** In the "Variable-length BPTT" cell, call `sample_bptt_length(70, rng, p=0.5)` and rerun
#    it. The bump at 35 should grow to the size of the one at 70; the mean should fall to about
#    0.5 × 70 + 0.5 × 35 = 52.5 (a little lower, as `int()` truncates; 0.95 × 70 + 0.05 × 35 = 68.25 is the
#    expected value behind the printed 67.8), and the share below 50 should be about one half. Windows that short
#    move the boundaries more but give each step less context to backpropagate through.
# 3. **Fixed windows on the real corpus.** In the "Real batches" cell, add `variable_length=False` to
#    `LMBatches(ids, offsets, batch_size=8, bptt=20, ...)` and rerun it. Both shapes become (8, 20), and the count
#    is exact arithmetic: 829,899 // 8 = 103,737 columns, of which 103,736 are inputs, in ⌈103,736 / 20⌉ = 5,187
#    windows, against 5,422 with random lengths (whose mean is a little below 20). The assertion still holds: the
#    shift by one and the carry-over between rows do not depend on how long the windows are.
