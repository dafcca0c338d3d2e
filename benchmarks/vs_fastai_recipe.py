"""fastai 2.8's documented ULMFiT recipe beside `ulmfit fit`: the same starting LM, splits and CPU minutes (issue 27 §4).

The fastai side is the text recipe of fastai's documentation (fastbook chapter 10 and the text tutorial):

    LM:          language_model_learner(dls_lm, AWD_LSTM, drop_mult=0.3)   bs 128, seq_len 80
                 fit_one_cycle(1, 2e-2) with the body frozen; unfreeze(); fit_one_cycle(10, 2e-3); save_encoder
    classifier:  text_classifier_learner(dls_clas, AWD_LSTM, drop_mult=0.5)  bs 128, seq_len 72; load_encoder
                 fit_one_cycle(1, 2e-2); freeze_to(-2); fit_one_cycle(1, slice(1e-2/2.6**4, 1e-2));
                 freeze_to(-3); fit_one_cycle(1, slice(5e-3/2.6**4, 5e-3)); unfreeze();
                 fit_one_cycle(2, slice(1e-3/2.6**4, 1e-3))

In fp32 (the tutorial's `to_fp16()` is for GPUs). How the same LM gets into fastai: fastai's own tokenizers cannot spell ulmfit's SentencePiece pieces, so the texts are
tokenised by the LM's own tokenizer (a fastai `Tokenizer` with no rules around it: the pieces are the tokens) and
numericalised with its vocabulary; the weights go through `ulmfit_to_fastai` (the file layout `ulmfit lm export
--fastai` writes) with rows 0 and 1 swapped, because fastai pads with id 1 and ulmfit with id 0.

Same splits: the rows fit_table.py draws, the 10% validation split `fit` holds out (labelled_splits, seed 0) and the
same test sample. Same minutes: fastai's recipe runs under the wall-clock budget `ulmfit fit` had (--minutes); the LM
stage may use at most the share `fit`'s own plan gave its LM stage (--lm-share), and a stage that would run past its
deadline is cut (fastai's CancelFitException) and says so. Each row is appended to --results (a test look: logged).

    python benchmarks/vs_fastai_recipe.py --datasets clickbait subj tweeteval_irony --rows 2000 --minutes 5
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_table import draw  # noqa: E402
from ulmfit import checkpoint as ckpt  # noqa: E402
from ulmfit.data.dataspec import DataSpec, labelled_splits  # noqa: E402
from ulmfit.pretrained.fastai_interop import ulmfit_to_fastai  # noqa: E402
from ulmfit.pretrained.model_zoo import resolve_pretrained  # noqa: E402
from ulmfit.runtime import cpu_flags, cpu_name  # noqa: E402

FASTAI_PAD = 1
LM_RECIPE = [("frozen", 1, 2e-2), ("unfreeze", 10, 2e-3)]
CLS_RECIPE = [(None, 1, 2e-2), (-2, 1, slice(1e-2 / 2.6 ** 4, 1e-2)), (-3, 1, slice(5e-3 / 2.6 ** 4, 5e-3)),
              ("unfreeze", 2, slice(1e-3 / 2.6 ** 4, 1e-3))]


class Pieces:
    """A fastai tokenizer (items -> token lists) that yields the pretrained LM's own SentencePiece pieces."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, items):
        for ids in self.tokenizer.encode_documents(list(items)):
            yield [self.tokenizer.id_to_piece(i) for i in ids]


def fastai_vocab(tokenizer, pad_id: int) -> list[str]:
    vocab = [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]
    vocab[pad_id], vocab[FASTAI_PAD] = vocab[FASTAI_PAD], vocab[pad_id]
    return vocab


def fastai_state(state: dict, n_layers: int, pad_id: int) -> dict:
    """ulmfit's LM state_dict in fastai's names, with the pad row moved to fastai's pad id."""
    out = ulmfit_to_fastai(state, n_layers)
    order = list(range(next(iter(v for k, v in out.items() if k.endswith("encoder.weight"))).shape[0]))
    order[pad_id], order[FASTAI_PAD] = order[FASTAI_PAD], order[pad_id]
    for key in ("0.encoder.weight", "0.encoder_dp.emb.weight", "1.decoder.weight", "1.decoder.bias"):
        if key in out:
            out[key] = out[key][order].float().clone()
    return {k: v.float() for k, v in out.items()}


def run_fastai(splits: dict, pretrained, minutes: float, lm_share: float, work: Path) -> dict:
    import pandas as pd
    from fastai.callback.core import Callback, CancelFitException
    from fastai.text.all import (AWD_LSTM, CategoryBlock, ColReader, ColSplitter, DataBlock, Perplexity, TextBlock,
                                 Tokenizer, accuracy, awd_lstm_clas_config, awd_lstm_lm_config,
                                 language_model_learner, text_classifier_learner)

    started = time.perf_counter()
    run_dir = resolve_pretrained(pretrained)
    _, config, state, tokenizer = ckpt.load_run(run_dir, stages=("pretrain", "finetune"))
    m = config.model
    sizes = dict(emb_sz=m.emb_size, n_hid=m.hidden_size, n_layers=m.n_layers, pad_token=FASTAI_PAD)
    vocab = fastai_vocab(tokenizer, m.pad_id)
    tok = Tokenizer.from_df("text", tok=Pieces(tokenizer), rules=[], n_workers=0)
    log = []

    class Deadline(Callback):
        order = 99

        def __init__(self, at: float):
            self.at, self.cut = at, False

        def after_batch(self):
            if time.perf_counter() > self.at:
                self.cut = True
                raise CancelFitException()

    def stages(learn, recipe, deadline: Deadline, name: str):
        for freeze, epochs, lr in recipe:
            if deadline.cut or time.perf_counter() > deadline.at:
                log.append(f"{name}: the budget ended before {epochs} epoch(s) at lr {lr}")
                deadline.cut = True
                return
            if freeze == "unfreeze":
                learn.unfreeze()
            elif freeze == "frozen":
                learn.freeze()
            elif freeze is not None:
                learn.freeze_to(freeze)
            with learn.no_bar():                 # the epoch table stays in the log, the progress bars go
                learn.fit_one_cycle(epochs, lr, cbs=[deadline])
            if deadline.cut:
                log.append(f"{name}: cut by the budget during {epochs} epoch(s) at lr {lr}")

    (tr_x, tr_y), (va_x, va_y) = splits["train"], splits["valid"]
    # fit fine-tunes its LM on the training and validation texts and holds out 10% of them for early stopping;
    # fastai's tutorial does the same with RandomSplitter(0.1)
    lm_texts = tr_x + va_x
    held = set(np.random.default_rng(0).permutation(len(lm_texts))[:max(1, len(lm_texts) // 10)].tolist())
    lm_df = pd.DataFrame({"text": lm_texts, "is_valid": [i in held for i in range(len(lm_texts))]})
    dls_lm = DataBlock(blocks=TextBlock(tok, vocab=vocab, is_lm=True, seq_len=80), get_x=ColReader("text"),
                       splitter=ColSplitter("is_valid")).dataloaders(lm_df, path=work, bs=128, seq_len=80)
    lm = language_model_learner(dls_lm, AWD_LSTM, config={**awd_lstm_lm_config, **sizes}, drop_mult=0.3,
                                pretrained=False, metrics=[accuracy, Perplexity()], path=work)
    lm.model.load_state_dict(fastai_state(state, m.n_layers, m.pad_id))
    lm_deadline = Deadline(started + minutes * 60 * lm_share)
    stages(lm, LM_RECIPE, lm_deadline, "LM")
    lm.save_encoder("finetuned")
    lm_minutes = (time.perf_counter() - started) / 60

    cls_df = pd.DataFrame({"text": tr_x + va_x, "label": tr_y + va_y,
                           "is_valid": [False] * len(tr_x) + [True] * len(va_x)})
    dls = DataBlock(blocks=(TextBlock(tok, vocab=vocab, seq_len=72), CategoryBlock), get_x=ColReader("text"),
                    get_y=ColReader("label"), splitter=ColSplitter("is_valid")).dataloaders(
                        cls_df, path=work, bs=128, seq_len=72)
    clf = text_classifier_learner(dls, AWD_LSTM, config={**awd_lstm_clas_config, **sizes}, drop_mult=0.5,
                                  pretrained=False, metrics=accuracy, path=work)
    clf.load_encoder("finetuned")
    clf.freeze()
    cls_deadline = Deadline(started + minutes * 60)
    stages(clf, CLS_RECIPE, cls_deadline, "classifier")
    train_minutes = (time.perf_counter() - started) / 60

    def score(texts, labels):
        with clf.no_bar():
            probs, _ = clf.get_preds(dl=clf.dls.test_dl(pd.DataFrame({"text": texts})))
        names = list(clf.dls.vocab[1])
        return sum(names[i] == y for i, y in zip(probs.argmax(1).tolist(), labels)) / len(labels)

    row = {"fastai_valid": round(score(va_x, va_y), 4), "fastai_lm_minutes": round(lm_minutes, 2),
           "fastai_train_minutes": round(train_minutes, 2),
           "fastai_cut": lm_deadline.cut or cls_deadline.cut, "fastai_log": log}
    if "test" in splits:
        row["fastai_test"] = round(score(*splits["test"]), 4)
    row["fastai_minutes_wall"] = round((time.perf_counter() - started) / 60, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--rows", type=int, nargs="+", default=[2000], help="0: every row")
    parser.add_argument("--minutes", type=float, default=15.0, help="the budget `ulmfit fit` had")
    parser.add_argument("--lm-share", type=float, default=0.5,
                        help="the share of --minutes the LM stage may use (fit's plan: see fit.json)")
    parser.add_argument("--pretrained", default="ulmfit-wiki-fwd")
    parser.add_argument("--test-rows", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/vs_fastai_recipe.jsonl"))
    args = parser.parse_args()
    try:
        import fastai
    except ImportError:
        sys.exit("fastai is not installed: make install-fastai")
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    header = {"commit": commit, "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "cpu": cpu_name(),
              "flags": " ".join(cpu_flags()), "threads": torch.get_num_threads(), "pretrained": args.pretrained,
              "fastai": fastai.__version__, "minutes_budget": args.minutes, "lm_share": args.lm_share,
              "test_look": True}
    for name in args.datasets:
        for rows in args.rows:
            train, test = draw(name, rows, args.test_rows)
            splits = labelled_splits(DataSpec.from_texts(train, None, test), 0, 0.1)
            with tempfile.TemporaryDirectory() as work:
                row = {**header, "dataset": name, "rows": len(train[0]), "valid_rows": len(splits["valid"][0]),
                       "test_rows": len(test[0]), **run_fastai(splits, args.pretrained, args.minutes, args.lm_share,
                                                               Path(work))}
            print(json.dumps(row), flush=True)
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with open(args.results, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
