"""The recipe of `ulmfit fit`: epochs, LRs, BPTT, batch size and the budget's split between LM fine-tuning (§3.2)
and the classifier (§3.3), as pure functions of the data and of the speed measured on this machine.

The paper's recipe is fixed epoch counts for IMDb on a GPU (LM 4 epochs... classifier 5). On a CPU and a few
thousand texts that stops long before the data is learnt (issue 27: LM validation perplexity still falling 350 ->
89 after 217 steps; a six-class set's classifier at 49.6% after 62 s while TF-IDF had 85.4%). So `fit` asks for as
many epochs as the data can use, lets early stopping on validation end each stage at its best epoch (keeping those
weights), and only then lets the clock cut: each stage's STLR follows whichever comes first, its epochs or its
minutes (train.fit's `max_minutes`).

Where each rule comes from (measured figures: benchmarks/results/demo.txt, benchmarks/results/fit_dev.txt):
- LM fine-tuning at a 16x higher top LR than fastai's (3.2e-2, lower groups / 2.6 per group) on BPTT 35 beat every
  lower LR under a short budget (clickbait valid perplexity 43.8 -> 20.2, and the classifier 98.98 -> 99.34% valid);
  long texts keep BPTT 70, whose windows carry more context per step than the short texts have.
- Up to 10 LM epochs: on held-out sets of a few thousand short texts validation perplexity was best at epoch 5 and
  at epoch 8 of 10, then rose; early stopping takes the best one.
- Up to 20 classifier epochs for small data (5 was the paper's): 20 epochs took a six-class set from 46% to 73%;
  early stopping (patience CLS_PATIENCE) ends it when validation accuracy stops rising.
- Gradual unfreezing (§3.3) makes the classifier's first epochs cheaper (only the unfrozen top runs backward), so
  epochs are counted at UNFREEZING_EPOCH_COST: measured, 1 core, against the all-layers epoch the speed probe
  predicts: IMDb (1,800 texts read to 128 tokens) 0.33 head only, 0.43 with lstm_2, 0.69 with lstm_1; clickbait
  0.35, 0.55, 0.91. Counting every epoch at full cost planned 3 classifier epochs where 5 fitted, and a 5-minute
  IMDb fit ended after 3.8 minutes, the rest of its budget unused.
- Batch size from the number of texts: at 64 a 500-text set gets 7 updates an epoch; FIT_STEPS_PER_EPOCH updates
  an epoch at least, between 8 and 64 texts a batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

LM_MAX_EPOCHS = 10
LM_PATIENCE = 1              # LM validation perplexity is smooth: the first rise is the turn
CLS_MAX_EPOCHS_SMALL = 20    # <= SMALL_DATA labelled texts
CLS_MAX_EPOCHS = 10
CLS_PATIENCE = 4             # classifier accuracy is noisy on a few hundred validation texts
SMALL_DATA = 5000
FIT_STEPS_PER_EPOCH = 60
SHORT_TEXT_TOKENS = 100      # a mean below this (headlines, tweets, sentences): BPTT 35
RESERVE_FRACTION = 0.08      # kept back for encoding, validation passes, the baseline and the report
RESERVE_SECONDS = 20.0
LM_SHARE_RANGE = (0.25, 0.6)
CLS_MIN_EPOCHS = 4           # fewer than this and long texts are cut to what 4 epochs can read (READ_TOKENS_MIN up)
READ_TOKENS_MIN = 128
INFER_SPEEDUP = 3.0          # inference (no backward) runs about this much faster than a training step
UNFREEZING_EPOCH_COST = (0.35, 0.45, 0.7)   # the first classifier epochs' cost / an all-layers epoch (above)


@dataclass(frozen=True)
class DataStats:
    n_train: int                 # labelled training texts
    n_classes: int
    mean_tokens: float           # per labelled text, in the pretrained LM's tokens
    lm_tokens: int               # tokens of the LM fine-tuning corpus (texts + unlabelled text)


@dataclass(frozen=True)
class Speeds:
    lm_tokens_per_s: float       # LM fine-tuning, measured on this machine with the planned batch and BPTT
    cls_tokens_per_s: float      # classifier training (all groups unfrozen), measured likewise


@dataclass(frozen=True)
class Plan:
    finetune: list[str]          # --set overrides for the LM fine-tuning stage
    classify: list[str]          # --set overrides for the classifier
    lm_minutes: float
    cls_minutes: float
    lm_epochs: int
    cls_epochs: int
    why: list[str]               # one line per decision, for the run's report
    read_tokens: int = 0         # the classifier reads each text's first N tokens (0: all)

    def describe(self) -> str:
        return "; ".join(self.why)


def lm_bptt(stats: DataStats) -> int:
    return 35 if stats.mean_tokens < SHORT_TEXT_TOKENS else 70


def cls_batch_size(n_train: int) -> int:
    """The largest power of two up to 64 that still gives FIT_STEPS_PER_EPOCH updates an epoch (at least 8)."""
    size = 2 ** int(math.floor(math.log2(max(n_train / FIT_STEPS_PER_EPOCH, 1))))
    return int(min(64, max(8, size)))


def lm_batch_size(stats: DataStats, bptt: int) -> int:
    """32 windows a step, fewer when the corpus is too small for FIT_STEPS_PER_EPOCH steps an epoch."""
    per_row = stats.lm_tokens / (FIT_STEPS_PER_EPOCH * bptt)
    return int(min(32, max(4, 2 ** int(math.floor(math.log2(max(per_row, 1)))))))


def min_seconds(stats: DataStats, speeds: Speeds, n_valid: int = 0, n_test: int = 0) -> float:
    """The least budget: ten steps of each stage, and the reserve with the texts read to the shortest prefix the
    plan may choose (the error message's figure)."""
    bptt = lm_bptt(stats)
    lm_step = lm_batch_size(stats, bptt) * bptt / speeds.lm_tokens_per_s
    cls_step = cls_batch_size(stats.n_train) * min(stats.mean_tokens, 1400) / speeds.cls_tokens_per_s
    return reserve_seconds(stats, speeds, n_valid, READ_TOKENS_MIN, n_test) + 10 * (lm_step + cls_step)


def unfreezing_cost(epochs: int) -> float:
    """The first `epochs` classifier epochs of gradual unfreezing, in all-layers epochs (UNFREEZING_EPOCH_COST)."""
    return sum(UNFREEZING_EPOCH_COST[k] if k < len(UNFREEZING_EPOCH_COST) else 1.0 for k in range(epochs))


def cls_epochs_in(seconds: float, epoch_s: float, cap: int) -> int:
    """How many classifier epochs start within `seconds` (the last one may be cut by the clock), at most `cap`."""
    epochs = 1
    while epochs < cap and unfreezing_cost(epochs) * epoch_s < seconds:
        epochs += 1
    return epochs


def reserve_seconds(stats: DataStats, speeds: Speeds, n_valid: int, read_tokens: int = 0, n_test: int = 0) -> float:
    """What the budget keeps back beyond training: a fixed part, plus the passes over the validation texts (the
    LM's before and after fine-tuning, the classifier's final one and the report's) and the one over the test
    texts (scored once; the report reuses those probabilities), at inference speed.
    Measured on 20 Newsgroups (734 tokens a text): without the validation term a 5-minute fit ran 5.9 minutes;
    without the test term in the plan, 2,000 IMDb test reviews left a 5-minute fit's classifier 6 seconds."""
    length = min(stats.mean_tokens, read_tokens or 1400)
    passes = (4 * n_valid + n_test) * length / (speeds.cls_tokens_per_s * INFER_SPEEDUP)
    return RESERVE_SECONDS + passes


def plan(stats: DataStats, speeds: Speeds, seconds: float, n_valid: int = 0, n_test: int = 0) -> Plan:
    """The two stages' settings and minutes for a budget of `seconds` (what is left after measuring). The reserve
    for the validation and test passes depends on how much of each text the classifier reads, which the plan
    decides: planned once at full length and, when that cuts the texts, again with the reserve at the cut."""
    first = _plan(stats, speeds, seconds, n_valid, n_test, 0)
    return _plan(stats, speeds, seconds, n_valid, n_test, first.read_tokens) if first.read_tokens else first


def _plan(stats: DataStats, speeds: Speeds, seconds: float, n_valid: int, n_test: int, reserve_read: int) -> Plan:
    bptt = lm_bptt(stats)
    reserve = reserve_seconds(stats, speeds, n_valid, reserve_read, n_test)
    usable = max(seconds * (1 - RESERVE_FRACTION) - reserve, 1.0)
    lm_epoch_s = stats.lm_tokens / speeds.lm_tokens_per_s
    cls_epoch_s = stats.n_train * min(stats.mean_tokens, 1400) / speeds.cls_tokens_per_s
    cls_max = CLS_MAX_EPOCHS_SMALL if stats.n_train <= SMALL_DATA else CLS_MAX_EPOCHS
    want_lm, want_cls = LM_MAX_EPOCHS * lm_epoch_s, cls_max * cls_epoch_s
    why = [f"{stats.n_train} labelled texts, {stats.n_classes} classes, {stats.mean_tokens:.0f} tokens a text, "
           f"{stats.lm_tokens:,} LM tokens; measured {speeds.lm_tokens_per_s:.0f} LM tok/s, "
           f"{speeds.cls_tokens_per_s:.0f} classifier tok/s"]
    if want_lm + want_cls <= usable:
        lm_s, cls_s = want_lm, want_cls
        why.append(f"the budget holds {LM_MAX_EPOCHS} LM and {cls_max} classifier epochs")
    else:
        share = min(max(want_lm / (want_lm + want_cls), LM_SHARE_RANGE[0]), LM_SHARE_RANGE[1])
        lm_s, cls_s = usable * share, usable * (1 - share)
        why.append(f"the budget holds {usable / (want_lm + want_cls):.0%} of the wanted epochs: LM gets "
                   f"{share:.0%} of it")
    # rounded up: the stage's minutes cut the last epoch (its STLR follows the clock), so no minute goes unused
    lm_epochs = max(1, min(LM_MAX_EPOCHS, math.ceil(lm_s / max(lm_epoch_s, 1e-9))))
    read_tokens = 0
    min_cost = unfreezing_cost(CLS_MIN_EPOCHS)
    if cls_s < min_cost * cls_epoch_s:           # long texts: read what CLS_MIN_EPOCHS epochs can afford
        affordable = cls_s * speeds.cls_tokens_per_s / (min_cost * stats.n_train)
        read_tokens = int(max(READ_TOKENS_MIN, affordable))
        if read_tokens < min(stats.mean_tokens, 1400):
            cls_epoch_s = stats.n_train * read_tokens / speeds.cls_tokens_per_s
            why.append(f"long texts: the classifier reads each text's first {read_tokens} tokens (what "
                       f"{CLS_MIN_EPOCHS} epochs in its budget can read, at least {READ_TOKENS_MIN})")
        else:
            read_tokens = 0
    cls_epochs = cls_epochs_in(cls_s, max(cls_epoch_s, 1e-9), cls_max)
    lm_batch, cls_batch = lm_batch_size(stats, bptt), cls_batch_size(stats.n_train)
    finetune = [f"epochs={lm_epochs}", "freeze_first_epoch=false", "lr=3.2e-2" if bptt == 35 else "lr=1.6e-2",
                f"bptt={bptt}", f"batch_size={lm_batch}", f"early_stopping={LM_PATIENCE}",
                f"max_minutes={lm_s / 60:.3f}"]
    classify = [f"epochs={cls_epochs}", f"batch_size={cls_batch}", f"early_stopping={CLS_PATIENCE}",
                "model.dropout_scale=0.5", f"head.read_tokens={read_tokens}"]
    why.append(f"LM fine-tuning: up to {lm_epochs} epochs in {lm_s / 60:.1f} min, BPTT {bptt}, batch {lm_batch}; "
               f"classifier: up to {cls_epochs} epochs in {cls_s / 60:.1f} min, batch {cls_batch}")
    return Plan(finetune, classify, lm_s / 60, cls_s / 60, lm_epochs, cls_epochs, why, read_tokens)
