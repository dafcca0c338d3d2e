# %% [markdown]
# # IMDb sentiment with ULMFiT, forward + backward
#
# IMDb (Maas et al. 2011) is ULMFiT's headline result: 4.6% test error (ULMFiT Table 2), from an ensemble of a
# forward and a backward classifier (§3.3, "Bidirectional language model"; §5 reports a single model at 5.30% and
# the bidirectional ensemble at 4.58%). That run pretrains on WikiText-103 and fine-tunes on 100k reviews on a GPU.
# This notebook runs the same recipe at CPU scale — QUICK: the 1,000-review `imdb_sample` and the `tiny` model;
# full: a seeded 1,000-review slice of IMDb with the `small` model in about 15 minutes of 2 CPU cores — then
# transfers to Rotten Tomatoes sentences, and lists the GPU commands for the full-scale run.
#
# **How long it runs.** Full mode, whose outputs are committed: 13 min on an Intel Xeon Cascade Lake, 2 cores,
# 2026-11-26, after notebook 04 has built the shared WikiText-2 LM. QUICK mode: 89 s in CI (AMD EPYC Zen 3, 2 cores,
# 2026-12-08); it trains far smaller models, so its figures differ from the ones the prose quotes.
# %% [include] _setup.py
# %% [include] _runs.py
# %% [markdown]
# ## The data
#
# QUICK uses fastai's IMDB_SAMPLE (its 200 validation reviews are our test split). Full mode uses a seeded slice of
# IMDb's official splits sized for a CPU: 1,000 training reviews, 300 validation reviews (from the seeded 10% held
# out of train) and 1,000 of the 25,000 test reviews. The LM is fine-tuned on the 1,000 training reviews' texts
# within 4 minutes (2 epochs at most, the first with only the top group trainable), the classifier within 5 minutes
# (5 epochs: one per unfreezing stage). The whole-IMDb CPU run of the same recipe — 22,500 training reviews, the 50k
# unlabelled ones for the LM, 2 h 7 min on 2 cores — is recorded in `benchmarks/results/imdb_small.txt` (8.69% test
# error on all 25,000 test reviews); `IMDB_FULL=1` in the environment makes this notebook run that instead.
#
# Full mode trains the forward direction only. `BACKWARD=1` in the environment adds the backward direction (another
# WikiText-2 pretraining, LM fine-tuning and classifier). QUICK always trains both.
# %%
from collections import Counter

from ulmfit.pipeline import labelled_splits

DIRECTIONS = {"forward": False, "backward": True}
if not (QUICK or os.environ.get("BACKWARD") == "1"):
    del DIRECTIONS["backward"]
if QUICK:
    DATASET, FT_ARGS, CLF_ARGS = "imdb_sample", [], []
    data = DataSpec(dataset=DATASET)
elif os.environ.get("IMDB_FULL") == "1":              # benchmarks/results/imdb_small.txt: 2 h 7 min
    DATASET = "imdb"
    FT_ARGS, CLF_ARGS = ["epochs=10", "max_minutes=60", "batch_size=16"], ["epochs=6", "max_minutes=75"]
    data = DataSpec(dataset=DATASET)
else:                                                   # the CPU-sized slice: ~20 min
    DATASET = "imdb-1k"
    FT_ARGS, CLF_ARGS = ["epochs=2", "max_minutes=4"], ["epochs=5", "max_minutes=5"]
    data = labelled_subset("imdb", n_train=1000, n_valid=300, n_test=1000, subset=True)
splits = labelled_splits(data, seed=0, valid_frac=0.1)
for split, (texts, labels) in splits.items():
    print(f"{split:<5} {len(texts):>6} reviews, labels {dict(sorted(Counter(labels).items()))}, "
          f"median {int(np.median([len(t.split()) for t in texts]))} words")
test_texts, test_labels = splits["test"]
print("\n", test_texts[0][:400], "...", f"[{test_labels[0]}]")
# %% [markdown]
# ## Two language models: forward and backward (§3.1–3.2)
#
# The backward LM reads every document right to left (`backwards=true` reverses the token stream); it shares the
# forward LM's tokenizer. Each is pretrained on WikiText-2 and fine-tuned on the review texts. Look at the
# perplexity on held-out reviews before and after fine-tuning, for each direction trained.
# %%
lm_dirs = {}
for direction, backwards in DIRECTIONS.items():
    lm_dirs[direction] = finetuned_lm(DATASET, backwards, *FT_ARGS, data=data)
    before = json.loads((lm_dirs[direction] / "before.json").read_text())
    after = json.loads((lm_dirs[direction] / "config.json").read_text())["history"][-1]
    print(f"{direction:<8} LM: review perplexity per token {before['valid_ppl']:.1f} -> {after['valid_ppl']:.1f}")
# %% [markdown]
# ## Two classifiers and their ensemble (§3.3)
#
# One classifier per direction, each with gradual unfreezing, concat pooling and BPT3C. `ensemble_proba` averages
# their class probabilities (each run dir knows its direction and reverses the texts itself). Look at whether the
# ensemble beats both of its members (when both directions were trained).
# %%
from ulmfit.predict import ensemble_proba

clf_dirs = {}
for direction, backwards in DIRECTIONS.items():
    clf_dirs[direction] = run_once(RUNS / f"classify-{DATASET}-{direction}", classify,
                                   stage_config("classify", f"backwards={str(backwards).lower()}", *CLF_ARGS),
                                   lm_dirs[direction], data)
truth = np.array(test_labels)
scored = [(name, [run]) for name, run in clf_dirs.items()]
if len(clf_dirs) > 1:
    scored.append(("forward + backward", list(clf_dirs.values())))
errors = {}
for name, dirs in scored:
    probs, label_names = ensemble_proba(dirs, test_texts)
    errors[name] = 100 * float(np.mean(np.array(label_names)[probs.argmax(1)] != truth))
    print(f"{name:<20} test error {errors[name]:.2f}%  (accuracy {100 - errors[name]:.2f}% on {len(truth):,} reviews)")
# %% [markdown]
# ## Next to the paper
#
# Our CPU-scale numbers and the paper's GPU-scale ones, with the GPU recipe at the end of this notebook. The gap is
# the scale: the paper's LM (32M parameters) is ~450× larger than `tiny` and ~5× `small`, pretrained on 103M
# WikiText-103 tokens for many epochs, then fine-tuned on all 100k reviews; here (full mode) the `small` LM had 25
# minutes of WikiText-2, then 4 minutes of 1,000 reviews, and the classifier 1,000 labels for 5 minutes. The TF-IDF
# row is fit on exactly the same training reviews and scored on the same test reviews, so it is the fair yardstick
# for this row. In QUICK mode expect errors near chance (50%): 720 reviews and a 70k-parameter LM trained for a few
# minutes are far below what sentiment needs, so QUICK shows that every step of the recipe runs, not how well it works.
# %%
import sys

from IPython.display import Markdown

sys.path.insert(0, "../benchmarks")
from tfidf_baseline import tfidf_logreg  # noqa: E402

train_texts, train_labels = splits["train"]
if DATASET == "imdb":                                  # 25k reviews: 84 min of TF-IDF fitting, measured once
    tfidf_error = 9.64                                  # benchmarks/results/tfidf_baseline.txt
else:
    tfidf_error = 100 * float(np.mean(tfidf_logreg().fit(train_texts, train_labels).predict(test_texts) != truth))
scale = {"imdb_sample": "QUICK: imdb_sample (720 train reviews), tiny preset, minutes on CPU",
         "imdb-1k": f"full: {len(train_texts):,} IMDb train reviews, {len(test_texts):,} test reviews, small preset, "
                    "~15 min on 2 CPU cores after the shared LM",
         "imdb": "IMDB_FULL: IMDb 22.5k/25k, small preset; LM fine-tuning 60 min + classifier 75 min on 2 CPU cores"}[DATASET]


def cell(name):
    return f"{errors[name]:.2f}%" if name in errors else "not trained (`BACKWARD=1`)"


rows = ["| run | forward | backward | fwd + bwd ensemble |", "|---|---|---|---|",
        f"| this notebook ({scale}) | {cell('forward')} | {cell('backward')} | {cell('forward + backward')} |",
        f"| TF-IDF word + char n-grams + logistic regression, the same train and test reviews | {tfidf_error:.2f}% | — | — |",
        *([] if QUICK or DATASET == "imdb" else [
            "| the same recipe on the whole of IMDb, CPU (`benchmarks/results/imdb_small.txt`, 2 h 7 min) | 8.69% | — | — |",
            "| TF-IDF + LR on the whole of IMDb (`benchmarks/results/tfidf_baseline.txt`) | 9.64% | — | — |"]),
        "| ULMFiT paper (WikiText-103, full IMDb, GPU) | 5.30% (§5, single model) | — | **4.6%** (Table 2; 4.58%, §5) |"]
Markdown("\n".join(rows))
# %% [markdown]
# Read the first two rows together before the paper's: with 1,000 labels and minutes of CPU, is the fine-tuned LM's
# classifier ahead of a bag of n-grams? The line below says which is, on these reviews. In full mode, the two
# whole-IMDb CPU rows show the same comparison once the LM and the classifier get hours instead of minutes.
# %%
gap = errors["forward"] - tfidf_error
print(f"ULMFiT (forward) {errors['forward']:.2f}% vs TF-IDF + LR {tfidf_error:.2f}% test error on the same "
      f"{len(truth):,} reviews: {'ULMFiT' if gap < 0 else 'TF-IDF + LR'} is ahead by {abs(gap):.2f} points")
# %% [markdown]
# ## Beyond the paper: a few hundred labels, from the IMDb classifier
#
# ULMFiT transfers a *language model*. When a classifier for a related task already exists, its encoder has learnt
# what that task needs, which an LM's features hold only weakly — useful when you have a few hundred labelled texts.
# `ulmfit classify --from-classifier DIR` (here `classify(..., from_classifier=True)`) starts from that encoder with a
# new head, so the labels may differ. Below, 500 Rotten Tomatoes sentences (QUICK: 200) are classified starting from
# the IMDb LM (ULMFiT's recipe) and from the IMDb classifier, with the same gradual unfreezing. Look at the gap:
# `benchmarks/results/sample_efficiency.txt` measured it at 100, 500 and all 7,678 labels with the full-mode runs.
# In QUICK mode both start from near-chance models, so expect both near 50%.
# %%
rt_data = labelled_subset("rt_polarity", n_train=200 if QUICK else 500, n_test=400 if QUICK else None, subset=True)
rt_config = stage_config("classify", "epochs=10", "max_minutes=0" if QUICK else "max_minutes=2")
rt_runs = {"from the IMDb LM (ULMFiT)": run_once(RUNS / "classify-rt-few-from-lm", classify, rt_config,
                                                 lm_dirs["forward"], rt_data),
           "from the IMDb classifier": run_once(RUNS / "classify-rt-few-from-classifier", classify, rt_config,
                                                clf_dirs["forward"], rt_data, from_classifier=True)}
for name, run in rt_runs.items():
    result = json.loads((run / "config.json").read_text())["results"]
    print(f"{name:<26} {result['n_train']} labelled sentences -> test accuracy {result['test_accuracy']:.2%} "
          f"on {result['n_test']:,}")
# %% [markdown]
# ### From reviews to sentences: distant supervision
#
# The IMDb classifier read 250-word reviews; Rotten Tomatoes holds single sentences, on which it leans to "pos".
# `ulmfit.data.distant` cuts labelled reviews into sentences that inherit their review's label: a large, noisy,
# sentence-level task in the target's format. Most sentences of a negative review are negative, but the plot summary
# is not; one way to drop such noise is to keep only the sentences on which the review classifier agrees with the
# inherited label (p ≥ 0.7, the `agree` source below). A classifier trained on 120k such sentences is then the
# starting point for Rotten Tomatoes (`benchmarks/rt_sentence_transfer.py`; its measured figures are in
# `benchmarks/results/rt_sentence_transfer.txt`). Below: two training reviews, sentence by sentence. Read it
# critically: the review classifier leans to "pos" on neutral sentences, so the filter keeps plot sentences of positive
# reviews and drops opinionated sentences that it misreads. Two other sources measured better on RT: sentences of
# reviews rated 1-2 or 9-10 stars, and sentences of unlabelled reviews the classifier labels with p ≥ 0.95.
# %%
from ulmfit.data.distant import agreement, sentences_with_labels
from ulmfit.predict import classifier_proba, load_classifier

review_model = load_classifier(clf_dirs["forward"])
negative, positive = review_model.label_names          # "neg"/"pos" (imdb) or "negative"/"positive" (QUICK)
picked = [train_labels.index(negative), train_labels.index(positive)]
sentences, inherited, _ = sentences_with_labels([train_texts[i] for i in picked], [train_labels[i] for i in picked])
own = agreement(classifier_proba(review_model, sentences)[:, 1], inherited, positive=positive)
for sentence, label, p in zip(sentences, inherited, own):
    print(f"{label}  p(own label)={p:.2f}  {'keep' if p >= 0.7 else 'drop'}  {sentence[:90]}")
# %% [markdown]
# ## The full-scale run (one GPU)
#
# The same pipeline with the `paper` preset: pretrain both directions on WikiText-103 (the long step: hours on one
# GPU), then fine-tune and classify each direction; `make classify … BACKWARDS=1` trains the backward model too and
# `ulmfit evaluate` scores the forward + backward ensemble.
#
# ```
# make pretrain CORPUS=wikitext103 PRESET=paper
# make pretrain CORPUS=wikitext103 PRESET=paper PRETRAIN_ARGS=--backwards   # or let BACKWARDS=1 build it
# make classify DATASET=imdb PRESET=paper BACKWARDS=1 CORPUS=wikitext103
# ```
# %%
import subprocess

print(subprocess.run(["make", "-n", "-C", "..", "classify", "DATASET=imdb", "PRESET=paper", "BACKWARDS=1",
                      "CORPUS=wikitext103"], capture_output=True, text=True).stdout)
# %% [markdown]
# `make -n` only prints what would run: two pretraining runs, two LM fine-tunings, two classifiers and the ensemble
# evaluation.
#
# ## Text from the fine-tuned language model
#
# `generate` samples from the fine-tuned forward LM (temperature 0.6, top-k 40) and, for the backward LM, writes the
# text that *precedes* a given ending. Look for review vocabulary; at QUICK scale (a tiny LM with a 1,000-piece
# vocabulary) expect mostly fragments of words, which is what a per-token perplexity in the hundreds looks like.
# %%
from ulmfit.predict import generate, load_language_model

lm = load_language_model(lm_dirs["forward"])
for seed, prompt in enumerate(["This movie was", "The acting", "I would not recommend"]):
    print(f"[{prompt}] ->", generate(lm, prompt, n_words=40, temperature=0.6, seed=seed), "\n")
if "backward" in lm_dirs:
    backward_lm = load_language_model(lm_dirs["backward"])
    print("[backward LM, text that ends with 'a waste of time.'] ->",
          generate(backward_lm, "a waste of time.", n_words=30, temperature=0.6, seed=0))
# %% [markdown]
# ### A note on generated text and its misuse
#
# The samples above are draws from the LM's next-piece distribution, sharpened by the temperature and cut to the 40
# likeliest pieces: statistically plausible continuations of the prompt, not statements of anyone's opinion and not
# facts. A language model fine-tuned on reviews writes fake reviews as readily as it completes a sentence, and
# generated reviews posted as if people wrote them (astroturfing, fake product and film ratings) are a documented
# misuse of exactly this kind of model. It also reproduces what is in its training text, offensive language and
# stereotypes included: IMDb reviews and Wikipedia both hold some. So label generated text as generated, never use
# it as evidence or as training data for the classifier without saying so, and keep in mind that the classifier of
# this notebook scores sentiment, not whether a human wrote the review.
# %% [markdown]
# ## Questions
#
# 1. How does the backward LM see a document, and what does it share with the forward LM?
# 2. How does `ensemble_proba` combine the two directions' classifiers?
# 3. Which three differences of scale separate this notebook's full-mode run from the paper's 4.6% error?
# 4. Why is TF-IDF on the same reviews a fairer yardstick for this notebook's number than the paper's figure?
# 5. Why might a classifier trained on 250-word reviews lean to one label on single neutral sentences?
# %% [markdown]
# <details>
# <summary>Answers (open after trying the questions)</summary>
#
# 1. With `backwards=true` the LM batches read the whole token stream from its end (`LMBatches` maps position p to
#    n_tokens − 1 − p), so the backward LM predicts each token from the ones that follow it; its classifier reverses
#    each document before padding. It shares the forward LM's SentencePiece tokenizer (`pretrained_lm(backwards=True)`
#    passes `tokenizer_dir=forward`), its preset and so its architecture, and the same corpora, but has its own
#    weights from its own pretraining and fine-tuning. This full-mode run did not train it (`BACKWARD` unset): only
#    the forward rows were printed.
# 2. It loads each run dir with `load_classifier`, gets its class probabilities with `classifier_proba` (a backward
#    dir's config makes the batches reverse the texts), checks that the label names agree, and returns the plain
#    unweighted mean of the probabilities; the prediction is the argmax of that mean (§3.3 averages the two
#    classifiers' predictions). With its default `baseline=True` each dir contributes what it delivers, i.e. its
#    mix with its own TF-IDF + LR where that run's config.json chose one on validation; the outputs here do not
#    show whether the forward run did. Here only one dir was given, so the "ensemble" is that classifier alone.
# 3. Pretraining: the paper's LM (400-d embeddings, 1,150 hidden units, 3 layers, 60,000 words) saw
#    WikiText-103's 103M tokens for many epochs, ours 25 minutes (2 epochs) of WikiText-2, 3.1M sub-word tokens
#    (notebook 04). LM fine-tuning: all 100k IMDb reviews against 1,000 reviews for 4 minutes (398.6 → 88.9
#    perplexity per token). Labels: 25,000 against 1,000 for 5 minutes; in addition 4.6% is a forward + backward
#    ensemble on all 25,000 test reviews, and 34.40% one forward model on 1,000 of them. The same `small` recipe on
#    the whole of IMDb reached 8.69% (the CPU row), so data and training time, not the method, account for most of
#    the gap.
# 4. The TF-IDF row is fit on exactly the same 1,000 training reviews and scored on the same 1,000 test reviews, so
#    the only difference is the method; against the paper's figure, data, compute, model size, ensembling and test
#    set all differ at once. Here it says TF-IDF + LR is ahead by 18.80 points (15.60% vs 34.40%), while the
#    whole-IMDb CPU rows show the same recipe ahead of TF-IDF once it gets hours (8.69% vs 9.64%).
# 5. Its training inputs were whole reviews (median 169 words in this slice, pooled over up to 1,400 tokens), so the
#    concat-pooled vector of a ten-word sentence — a max over few tokens, a noisy mean — lies outside what the head
#    and its BatchNorm saw, and the head's answer there is set by where that region happens to fall, not by evidence.
#    A neutral sentence also holds no sentiment cue, and a two-class softmax cannot say "neither"; plot sentences
#    occur in reviews of both labels, so which way they tip depends on incidental correlations in 1,000 training
#    reviews. The printout shows this run's lean: "Bromwell High is a cartoon comedy." gets p(pos) = 0.95, and the
#    negative review's plot sentence "He pushes it in someone's face…" gets p(own label) = 0.06, i.e. p(pos) = 0.94.
#
# </details>
# %% [markdown]
# ## Change this and rerun
#
# 1. **The agreement filter** (no training; seconds). In the distant-supervision cell change the `0.7` in
#    `'keep' if p >= 0.7 else 'drop'` to `0.9`, then `0.5`, and rerun only that cell. Look at how many sentences
#    are kept and from which review: a stricter filter keeps fewer, cleaner labels, but it keeps what the review
#    classifier already believes, so with a classifier that leans to "pos" the kept set becomes more one-sided (at
#    0.9, of the printed values, the positive review's 0.95, 0.97 and 0.96 and the negative review's 0.90, which is
#    borderline because the printout rounds); at 0.5 the filter only drops the sentences it reads the other way.
# 2. **Sampling temperature** (no training; seconds). In the generation cell change `temperature=0.6` in the
#    `generate(lm, prompt, ...)` call to `0.2`, then `1.0`, and rerun it. Low temperature sharpens the
#    distribution towards the most likely pieces (repetitive, more common words); high temperature flattens it,
#    so expect more variety and more broken words from an LM whose perplexity on reviews is still 88.9 per token.
# 3. **The backward direction and the ensemble** (training: another WikiText-2 pretraining of about 25 minutes,
#    an LM fine-tuning and a classifier). Start the kernel with `BACKWARD=1` in its environment (the data cell reads
#    it into `DIRECTIONS`) and rerun the notebook; the forward runs are reused. Look at the "forward + backward" row
#    against both members: averaging two classifiers that read the text in opposite directions helps when their
#    errors are partly independent (§5: 5.30% single vs 4.58% bidirectional), but a weak member pulls the average
#    towards its own errors, so at this scale the ensemble need not beat the better direction.
