"""Top layer: the three ULMFiT stages as plain functions, shared by the CLI, the Makefile, the notebooks and the tests.

    pretrain(config, data, out)            general-domain LM (ULMFiT §3.1): tokenizer + AWD-LSTM on e.g. WikiText
    finetune(config, pretrained, data, out)  target-task LM fine-tuning (§3.2): discriminative LR + STLR
    classify(config, lm_dir, data, out)     classifier fine-tuning (§3.3): concat pooling, BPT3C, gradual unfreezing;
                                            then report.md and the TF-IDF + LR baseline beside it (run_report.py)
    evaluate(run_dir, texts, labels)        a classify run's accuracy, macro-F1, per-class scores, confusion matrix

`data` is a `DataSpec` (dataspec.py): a registry dataset, files, or texts in memory (`DataSpec.from_texts`).
Each stage reads the previous stage's run dir and writes its own; an input dir is never overwritten.
Every function returns a dict of results (the CLI prints it as the last line, in JSON).
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt, predict
from .model.awd_lstm import LanguageModel
from .text.batching import ClassificationBatches, LMBatches
from .model.classifier import TextClassifier
from .config import StageConfig, validate
from .text.corpus import load_corpus
from .data.dataspec import DataSpec, labelled_splits, lm_documents, texts_in_memory
from .errors import RunFinished, UlmfitError, empty_texts, refuse_unknown_labels
from .train.evaluate import evaluate_lm, predict_proba
from .analysis.metrics import classification_report
from .pretrained.model_zoo import resolve_pretrained
from .run_report import write_run_report
from .runtime import Runtime, seed_everything, setup_runtime
from .train.schedule import unfreeze_plan
from .train.tasks import ClassifierTask, LMTask
from .text.tokenizer import Tokenizer, load_tokenizer, tokenizer_files, train_tokenizer
from .train.loop import Stage, fit, stages_from_plan
from .pretrained.transfer import match_embeddings, vocabulary

ARCH_FIELDS = ("vocab_size", "emb_size", "hidden_size", "n_layers", "tie_weights", "out_bias", "pad_id")


# ---- data -------------------------------------------------------------------------------------------------
def count_words(documents: list[str]) -> int:
    """Whitespace-separated words plus one end-of-line per line: the WikiText per-word convention."""
    return sum(len(line.split()) + 1 for doc in documents for line in doc.split("\n"))


def _encode(tokenizer: Tokenizer, documents: list[str], prefix: Path, desc: str, rt: Runtime):
    """Numericalise `documents` to `<prefix>.ids.npy`: rank 0 writes the files, the other ranks then map them."""
    if rt.is_main:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        large = len(documents) > 2000 if hasattr(documents, "__len__") else True    # a stream: a big corpus
        tokenizer.encode_corpus(documents, prefix, processes=2 if large and cores > 1 else 1, desc=desc)
    rt.barrier()
    return load_corpus(prefix)


def _lm_batches(ids, offsets, cfg, seed: int, rt: Runtime, shuffle: bool, batch_size: int | None = None):
    return LMBatches(ids, offsets, batch_size or cfg.batch_size, cfg.bptt, shuffle=shuffle, seed=seed,
                     backwards=cfg.backwards, variable_length=shuffle, rank=rt.rank, world_size=rt.world_size)


def _prepare(out_dir: Path, resume: bool, force: bool, rt: Runtime, protect=()) -> tuple[Path, bool]:
    """Rank 0 checks and creates the out dir; the other ranks wait for it. Returns (out dir, whether the run
    continues from a checkpoint): a --resume with no checkpoint yet starts afresh.

    Rank 0's outcome (ready, finished, refused) and its resume decision reach every rank in one all-reduce, which
    is also the barrier: a rank that raised alone would leave the others waiting (and under torchrun, a supervisor
    loop around a finished run would never end)."""
    outcome, error = 0.0, None
    if rt.is_main:
        try:
            ckpt.prepare_out_dir(out_dir, resume, force, protect)
        except RunFinished as e:
            outcome, error = 1.0, e
        except UlmfitError as e:
            outcome, error = 2.0, e
    resuming = float(rt.is_main and outcome == 0 and resume and (Path(out_dir) / ckpt.RESUME_FILE).is_file())
    outcome, resuming = rt.all_sum(outcome, resuming)
    if outcome == 1:
        raise error or RunFinished(out_dir)
    if outcome == 2:
        raise error or UlmfitError(f"--out {out_dir} was refused by the first process (its error says why)")
    return Path(out_dir), resuming > 0


def _runtime(config: StageConfig, rt: Runtime | None) -> Runtime:
    rt = rt or setup_runtime(config.run.precision, config.run.threads)
    seed_everything(config.run.seed + 1000 * rt.rank)          # per-rank dropout masks
    return rt


# ---- stage 1 and 2: language models -------------------------------------------------------------------------
def pretrain(config: StageConfig, data: DataSpec, out_dir: Path, tokenizer_dir: Path | None = None,
             resume: bool = False, force: bool = False, rt: Runtime | None = None) -> dict:
    """ULMFiT §3.1: train a tokenizer (unless given) and an AWD-LSTM LM on a general-domain corpus."""
    started = time.perf_counter()                      # a max_minutes budget counts from here
    validate(config)
    rt = _runtime(config, rt)
    out_dir, resume = _prepare(out_dir, resume, force, rt)
    docs = lm_documents(data)
    if rt.is_main:                         # one tokenizer, trained by rank 0; the other ranks load it
        if tokenizer_dir:
            tokenizer = load_tokenizer(tokenizer_dir)
        elif resume and tokenizer_files(out_dir)[0].is_file():
            tokenizer = load_tokenizer(out_dir)
        else:
            tokenizer = train_tokenizer(docs["train"], config.tokenizer, out_dir)
        tokenizer.save(out_dir)
    rt.barrier()
    if not rt.is_main:
        tokenizer = load_tokenizer(out_dir)
    config = dataclasses.replace(config, model=dataclasses.replace(
        config.model, vocab_size=tokenizer.vocab_size, pad_id=getattr(tokenizer, "pad_id", config.model.pad_id)))
    model = LanguageModel(config.model).to(rt.device)
    n_groups = len(model.layer_groups())
    stages = [Stage("all", config.train.epochs, list(range(n_groups)))]
    return _train_lm(model, tokenizer, docs, config, stages, out_dir, resume, rt, "pretrain",
                     {"corpus": data.describe()}, started)


def finetune(config: StageConfig, pretrained_dir: Path, data: DataSpec, out_dir: Path, resume: bool = False,
             force: bool = False, rt: Runtime | None = None) -> dict:
    """ULMFiT §3.2: fine-tune a pretrained LM on the target texts with discriminative LR and STLR."""
    started = time.perf_counter()
    pretrained_dir = resolve_pretrained(pretrained_dir)          # a registry name (wt103-fwd) -> its cached run dir
    meta, lm_config, state, tokenizer = ckpt.load_run(pretrained_dir, stages=("pretrain", "finetune"))
    config = inherit_architecture(config, lm_config)
    rt = _runtime(config, rt)
    out_dir, resume = _prepare(out_dir, resume, force, rt, protect=(pretrained_dir,))
    docs = lm_documents(data)
    if lm_config.tokenizer.model_type in ("word", "fastai"):   # a word vocabulary cannot spell new words: move to the target's
        tokenizer, state, n_new = _target_word_vocabulary(tokenizer, state, docs["train"], lm_config, out_dir, rt)
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, vocab_size=tokenizer.vocab_size))
        print(f"[finetune] word vocabulary of the target corpus: {tokenizer.vocab_size} words, {n_new} new "
              "(their embeddings start at the mean row)", flush=True)
    model = ckpt.build_checked(lambda: LanguageModel(config.model), state, Path(pretrained_dir))
    model.to(rt.device)
    n = len(model.layer_groups())
    epochs = config.train.epochs
    if config.train.freeze_first_epoch and epochs > 1:
        stages = [Stage("last", 1, [n - 1]), Stage("all", epochs - 1, list(range(n)))]
    else:
        stages = [Stage("all", epochs, list(range(n)))]
    return _train_lm(model, tokenizer, docs, config, stages, out_dir, resume, rt, "finetune",
                     {"pretrained": str(pretrained_dir), "target": data.describe()}, started, measure_before=True)


def _target_word_vocabulary(tokenizer, state, documents, lm_config, out_dir, rt):
    """Train a word tokenizer on the target texts and re-index the LM's embedding rows to it (match_embeds)."""
    if rt.is_main:
        train_tokenizer(documents, lm_config.tokenizer, out_dir)
    rt.barrier()
    target = load_tokenizer(out_dir)
    state, n_new = match_embeddings(state, vocabulary(tokenizer), vocabulary(target))
    return target, state, n_new


def inherit_architecture(config: StageConfig, lm_config: StageConfig) -> StageConfig:
    """The architecture and tokenizer come from the run being loaded; dropouts and training from `config`."""
    if lm_config.train.backwards != config.train.backwards:
        raise UlmfitError(f"the loaded LM was trained with backwards={lm_config.train.backwards}; pass "
                          f"--set backwards={str(lm_config.train.backwards).lower()} to match it")
    arch = {f: getattr(lm_config.model, f) for f in ARCH_FIELDS}
    config = dataclasses.replace(config, tokenizer=lm_config.tokenizer, model=dataclasses.replace(config.model, **arch))
    validate(config)
    return config


def _train_lm(model, tokenizer, docs, config, stages, out_dir, resume, rt, stage_name, extra, started: float,
              measure_before=False) -> dict:
    data_dir = out_dir / "data"
    train_ids, train_off = _encode(tokenizer, docs["train"], data_dir / "train", "tokenize train", rt)
    valid_ids, valid_off = _encode(tokenizer, docs["valid"], data_dir / "valid", "tokenize valid", rt)
    cfg, run = config.train, config.run
    valid_docs = docs["valid"]
    if run.eval_tokens and len(valid_ids) > run.eval_tokens:   # the first whole documents, so words stay exact
        k = max(1, int(np.searchsorted(valid_off, run.eval_tokens)))
        valid_ids, valid_off, valid_docs = valid_ids[:valid_off[k]], valid_off[:k + 1], valid_docs[:k]
    train_batches = _lm_batches(train_ids, train_off, cfg, run.seed, rt, shuffle=True)
    valid_batches = _lm_batches(valid_ids, valid_off, cfg, run.seed, rt, shuffle=False,
                                batch_size=min(cfg.batch_size, 16))
    if len(train_batches) == 0:
        raise UlmfitError(f"the training corpus ({len(train_ids)} tokens) is too small for batch_size="
                          f"{cfg.batch_size} x bptt={cfg.bptt}")
    n_words = count_words(valid_docs)
    task = LMTask(train_batches, valid_batches, cfg, rt, n_valid_words=n_words)
    result = {"stage": stage_name, "out": str(out_dir), "train_tokens": int(len(train_ids)),
              "valid_tokens": int(len(valid_ids)), "valid_words": n_words, **extra}
    if measure_before and not resume:
        before = evaluate_lm(model, valid_batches, rt, n_words)
        result.update({f"before_{k}": v for k, v in before.items()})
        ckpt_log = {"kind": "before", **before}
        if rt.is_main:
            ckpt.write_json(out_dir / "before.json", ckpt_log)
    history = fit(model, task, stages, cfg, run, rt, out_dir, resume=resume, desc=stage_name, started=started)
    if rt.is_main:
        ckpt.save_run(out_dir, model, config, stage_name, tokenizer, extra={**extra, "history": history})
        (out_dir / ckpt.RESUME_FILE).unlink(missing_ok=True)     # finished: nothing left to resume
    if history:
        result.update({k: v for k, v in final_epoch(history).items() if k.startswith("valid")})
    result["epochs_run"] = len(history)
    return result


def final_epoch(history: list[dict]) -> dict:
    """The epoch whose weights the run kept: the best one under early stopping, else the last."""
    kept = history[-1].get("restored_epoch")
    return next((h for h in history if h.get("epoch") == kept), history[-1]) if kept else history[-1]


# ---- stage 3: the classifier --------------------------------------------------------------------------------
def classify(config: StageConfig, lm_dir: Path, data: DataSpec, out_dir: Path, resume: bool = False,
             force: bool = False, rt: Runtime | None = None, from_classifier: bool = False) -> dict:
    """ULMFiT §3.3: a concat-pooling classifier on the fine-tuned encoder, trained with gradual unfreezing.

    `from_classifier=True` takes the encoder from a classify run instead of an LM (sequential transfer, beyond the
    paper): a sentiment classifier trained on IMDb's 25k reviews already encodes what a small review dataset needs,
    which an LM's features hold only weakly. The head always starts afresh, so the label sets may differ.
    """
    started = time.perf_counter()
    source_stages = ("classify",) if from_classifier else ("pretrain", "finetune")
    lm_dir = resolve_pretrained(lm_dir)
    meta, lm_config, state, tokenizer = ckpt.load_run(lm_dir, stages=source_stages)
    config = inherit_architecture(config, lm_config)
    cfg, seed = config.train, config.run.seed
    rt = _runtime(config, rt)
    out_dir, resume = _prepare(out_dir, resume, force, rt, protect=(lm_dir,))
    splits = labelled_splits(data, seed, cfg.valid_frac)
    label_names = label_vocabulary(splits["train"][1])
    if len(label_names) < 2:
        raise UlmfitError(f"the training labels hold a single class ({label_names[0]!r}); a classifier needs at "
                          "least two classes")
    encoded = {name: encode_labelled(tokenizer, texts, labels, label_names, out_dir / "data" / name, name, rt)
               for name, (texts, labels) in splits.items()}
    model = TextClassifier.from_config(config.model, len(label_names), config.head, cfg.bptt)
    if not cfg.no_pretraining:
        model.load_encoder_state(state)
    model.to(rt.device)
    train_ids, train_off, train_y = encoded["train"]
    train_batches = ClassificationBatches(train_ids, train_off, train_y, cfg.batch_size, shuffle=True, seed=seed,
                                          backwards=cfg.backwards, rank=rt.rank, world_size=rt.world_size)
    valid_batches = _eval_batches(encoded["valid"], cfg)
    weights = _class_weights(train_y, len(label_names)) if cfg.class_weights else None
    task = ClassifierTask(train_batches, valid_batches, encoded["valid"][2], cfg, rt, weights)
    n_groups = len(model.layer_groups())
    names = [name for name, _ in model.layer_groups()]
    stages = stages_from_plan(names, unfreeze_plan(n_groups, cfg.strategy, cfg.epochs))
    history = fit(model, task, stages, cfg, config.run, rt, out_dir, resume=resume, desc="classify",
                  started=started)
    result = {"stage": "classify", "out": str(out_dir), "labels": label_names, "lm_dir": str(lm_dir),
              "encoder_from": meta["stage"], "strategy": cfg.strategy, "no_pretraining": cfg.no_pretraining,
              "n_train": len(train_y), "n_valid": len(encoded["valid"][2])}
    if history:
        result.update({k: v for k, v in final_epoch(history).items() if k.startswith("valid")})
        result["epochs_run"] = len(history)
    probs = {}
    if "test" in encoded:
        probs["test"], scores = _score_test(model, encoded["test"], label_names, cfg, rt)
        result.update(scores)
    if rt.is_main:
        ckpt.save_run(out_dir, model, config, "classify", tokenizer,
                      extra={"labels": label_names, "lm_dir": str(lm_dir), "encoder_from": meta["stage"],
                             "history": history,
                             "results": {k: v for k, v in result.items() if k not in ("labels",)}})
        (out_dir / ckpt.RESUME_FILE).unlink(missing_ok=True)
        # the run is finished and saved; the report (and the baseline, and its ensemble offer) comes after it
        restored = history and history[-1].get("restored_epoch") not in (None, history[-1].get("epoch"))
        probs["valid"] = (getattr(task, "last_valid_probs", None) if history and not restored else None)
        if probs["valid"] is None:                # no epoch ran in this process (e.g. resumed at the very end)
            probs["valid"] = predict_proba(model, valid_batches, rt, len(encoded["valid"][2]))
        result.update(write_run_report(out_dir, splits, probs, device=rt.device))
    return result


def _class_weights(train_y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse class frequency, normalised to mean 1 over the training documents (`--set class_weights=true`)."""
    counts = np.bincount(train_y, minlength=n_classes).astype(np.float64)
    return torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)


def _score_test(model, encoded_test, label_names: list[str], cfg, rt) -> tuple[np.ndarray, dict]:
    """The test split's probabilities and its accuracy and macro-F1: scored once, after training."""
    y = encoded_test[2]
    probs = predict_proba(model, _eval_batches(encoded_test, cfg), rt, len(y))
    report = classification_report(y.tolist(), probs.argmax(1).tolist(), label_names)
    return probs, {"test_accuracy": report["accuracy"], "test_macro_f1": report["macro_f1"], "n_test": report["n"]}


def label_vocabulary(labels: list[str]) -> list[str]:
    """Sorted label names; numeric labels sort as numbers ("2" before "10")."""
    names = sorted(set(map(str, labels)))
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def encode_labelled(tokenizer: Tokenizer, texts: list[str], labels: list[str] | None, label_names: list[str],
                    prefix: Path, desc: str, rt: Runtime):
    """Numericalise texts and map labels to ids; an unknown label or an empty text is a user error."""
    empty = empty_texts(texts)
    if empty:
        raise UlmfitError(f"{len(empty)} empty text(s) in the {desc} data (first at row {empty[0] + 1})")
    y = np.zeros(len(texts), dtype=np.int64)
    if labels is not None:
        refuse_unknown_labels(labels, label_names, desc)
        index = {name: i for i, name in enumerate(label_names)}
        y = np.array([index[str(lab)] for lab in labels], dtype=np.int64)
    ids, offsets = _encode(tokenizer, list(texts), prefix, f"tokenize {desc}", rt)
    return ids, offsets, y


def _eval_batches(encoded, cfg):
    ids, offsets, y = encoded
    return ClassificationBatches(ids, offsets, y, cfg.batch_size, shuffle=False, seed=0,       # unshuffled: unused
                                 backwards=cfg.backwards)


# ---- after training: scores on labelled texts ---------------------------------------------------------------
def evaluate(run_dir: Path, texts, labels, batch_size: int = 64, baseline: bool = True) -> dict:
    """`metrics.classification_report` of the classify run in `run_dir` on texts and labels held in memory:
    accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (`metrics.format_report` prints it).
    As `ulmfit evaluate`, with the run's TF-IDF + LR baseline averaged in where the run chose it (`baseline=False`:
    the classifier alone).

    Labels are compared as str, as in training; a label the model never saw is a UlmfitError.
    """
    data = texts_in_memory(texts, labels, "evaluation")
    model = predict.TextClassifier.from_pretrained(run_dir, baseline=baseline)
    refuse_unknown_labels(data.labels, model.label_names, "evaluation")
    index = {name: i for i, name in enumerate(model.label_names)}
    predicted = model.predict_proba(data.texts, batch_size).argmax(1).tolist()
    return classification_report([index[y] for y in data.labels], predicted, model.label_names)
