"""Which size and vocabulary of pretrained LM buys the most downstream accuracy per CPU-minute (issue 26, item 3).

Every variant gets the same treatment, so that the only difference is its size or its vocabulary:
1. pretraining for the same wall-clock minutes (--pretrain-minutes, tokenizing included) on the same seeded sample
   of wikipedia_2015's training documents, with the shipped LM's recipe (batch 32 x BPTT 70, STLR to 8e-3, no
   dropout: each token is seen about once) — validation perplexity PER WORD on the same held-out articles, which
   compares vocabularies fairly (per token does not: a word vocabulary has fewer, harder tokens);
2. `ulmfit fit` from it on each development set for the same minutes (--fit-minutes): N training rows drawn from
   the set's train split, and a validation split of --valid-rows rows drawn from its valid split — larger than
   fit's own 10%, so that a few points are signal. The test splits are never read: this chooses what to ship.

    python benchmarks/lm_size_vocab.py --out runs/size-vocab            # all variants, then the table
    python benchmarks/lm_size_vocab.py --table benchmarks/results/lm_size_vocab.jsonl

Run it alone (or pinned to one core with OMP_NUM_THREADS=1): the variants are compared by what they learn in the
same minutes, so a neighbour's load changes the answer. Resumable: a finished variant or fit is read back.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from ulmfit import checkpoint as ckpt
from ulmfit.config import apply_overrides, preset
from ulmfit.data import download as datasets
from ulmfit.data.dataspec import DataSpec, Texts
from ulmfit.fit import fit
from ulmfit.pipeline import pretrain
from ulmfit.pretrained.model_zoo import SHIPPED_DIR
from ulmfit.runtime import bf16_is_emulated, cpu_flags, cpu_name, precision_problem

from fit_table import stratified  # noqa: E402  (benchmarks/ is the script's folder)

SHIPPED_TOKENIZER = SHIPPED_DIR / "ulmfit-wiki-fwd"
# the shipped LM's recipe (its PROVENANCE.md), for every variant
RECIPE = ["batch_size=32", "bptt=70", "lr=8e-3", "model.dropout_scale=0", "eval_tokens=150000", "threads=1"]
# name -> (what it is, --set overrides, whether it reuses the shipped 8k-piece tokenizer)
VARIANTS = {
    "small-sp8k": ("the shipped size: embedding 256, hidden 512, 3 layers; 8k SentencePiece pieces", [], True),
    "smaller-sp8k": ("embedding 128, hidden 256, 3 layers; 8k pieces",
                     ["model.emb_size=128", "model.hidden_size=256"], True),
    "larger-sp8k": ("the paper's size: embedding 400, hidden 1152, 3 layers; 8k pieces",
                    ["model.emb_size=400", "model.hidden_size=1152"], True),
    "small-word30k": ("the shipped size on a fastai-kind word vocabulary (spaCy + fastai's rules, 30k words, "
                      "min_freq 3)", ["tokenizer.model_type=fastai", "tokenizer.vocab_size=30000"], False),
}
DATASETS = ("rt_polarity", "subj", "tweeteval_irony")


def corpus_sample(n_words: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """A seeded sample of wikipedia_2015's training documents holding about `n_words` words, and its validation
    articles (the ones every shipped LM is measured on)."""
    corpus = datasets.load_lm_corpus("wikipedia_2015")
    docs = list(corpus["train"])
    rng = np.random.default_rng(seed)
    picked, words = [], 0
    for i in rng.permutation(len(docs)):
        picked.append(docs[i])
        words += len(docs[i].split())
        if words >= n_words:
            break
    return picked, list(corpus["valid"])


def pretrain_precision() -> str:
    """bf16 where this CPU runs it natively (the shipped LM's precision), else fp32."""
    return "bf16" if precision_problem("bf16") is None and not bf16_is_emulated() else "fp32"


def pretrain_variant(name: str, out: Path, train: list[str], valid: list[str], minutes: float) -> dict:
    what, overrides, shipped_tokenizer = VARIANTS[name]
    run = out / "lm" / name
    if not (run / ckpt.WEIGHTS_FILE).is_file():
        config = apply_overrides(preset("small", "pretrain"), RECIPE + overrides + [f"max_minutes={minutes}",
                                                                             f"precision={pretrain_precision()}"])
        data = DataSpec(train=[Texts(train, None)], valid=Texts(valid, None, "valid"))
        start = time.perf_counter()
        pretrain(config, data, run, tokenizer_dir=SHIPPED_TOKENIZER if shipped_tokenizer else None, force=True)
        ckpt.write_json(run / "wall.json", {"minutes": round((time.perf_counter() - start) / 60, 2)})
    meta = ckpt.read_json(run / ckpt.CONFIG_FILE)
    last = meta["history"][-1]
    steps = last["step"]
    n_params = sum(v.numel() for v in ckpt.load_tensors(run / ckpt.WEIGHTS_FILE).values())
    return {"variant": name, "what": what, "params": int(n_params), "vocab": meta["config"]["model"]["vocab_size"],
            "pretrain_minutes": ckpt.read_json(run / "wall.json")["minutes"], "steps": steps,
            "tokens_seen": steps * 32 * 70, "valid_ppl_token": last.get("valid_ppl"),
            "valid_ppl_word": last.get("valid_ppl_word")}


def fit_variant(name: str, dataset: str, out: Path, rows: int, valid_rows: int, minutes: float,
                pretrained=None) -> dict:
    """`fit` from the variant's LM (or `pretrained`) on `rows` training rows and `valid_rows` validation rows."""
    run = out / "fit" / f"{name}-{dataset}"
    done = run / "row.json"
    if done.is_file():
        return ckpt.read_json(done)
    splits = datasets.load_labelled(dataset)
    train = stratified(*splits["train"], rows)
    valid = stratified(*splits["valid"], valid_rows)
    result = fit(DataSpec.from_texts(train, valid), run, pretrained=pretrained or out / "lm" / name, minutes=minutes,
                 force=True)
    row = {"variant": name, "dataset": dataset, "rows": len(train[0]), "valid_rows": len(valid[0]),
           "valid_ulmfit": result.get("valid_accuracy"), "valid_tfidf": result.get("baseline_valid_accuracy"),
           "lm_valid_ppl": result.get("lm_valid_ppl"), "minutes_wall": result.get("minutes_total"),
           "lm_minutes": result.get("lm_minutes"), "classifier_minutes": result.get("classifier_minutes"),
           "epochs_run": result.get("epochs_run")}
    ckpt.write_json(done, row)
    return row


def table(records: list[dict]) -> str:
    lms = [r for r in records if r.get("kind") == "lm"]
    fits = [r for r in records if r.get("kind") == "fit"]
    sets = sorted({r["dataset"] for r in fits})
    lines = [f"{'variant':15} {'params':>10} {'vocab':>6} {'min':>5} {'tokens':>10} {'ppl/tok':>8} {'ppl/word':>9} | "
             + " ".join(f"{s[:14]:>14}" for s in sets) + " | mean"]
    for lm in lms:
        accs = {r["dataset"]: r["valid_ulmfit"] for r in fits if r["variant"] == lm["variant"]}
        cells = [f"{100 * accs[s]:14.1f}" if s in accs else f"{'-':>14}" for s in sets]
        mean = f"{100 * np.mean([accs[s] for s in sets]):.1f}" if sets and all(s in accs for s in sets) else "-"
        lines.append(f"{lm['variant']:15} {lm['params']:>10,} {lm['vocab']:>6,} {lm['pretrain_minutes']:5.1f} "
                     f"{lm['tokens_seen']:>10,} {lm['valid_ppl_token']:8.1f} {lm['valid_ppl_word']:9.1f} | "
                     + " ".join(cells) + f" | {mean}")
    tfidf = {s: next(r["valid_tfidf"] for r in fits if r["dataset"] == s) for s in sets}
    if sets:
        lines.append(f"{'TF-IDF + LR':15} {'':>10} {'':>6} {'':>5} {'':>10} {'':>8} {'':>9} | "
                     + " ".join(f"{100 * tfidf[s]:14.1f}" for s in sets)
                     + f" | {100 * np.mean(list(tfidf.values())):.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--words", type=int, default=4_000_000, help="words of Wikipedia in the pretraining sample")
    parser.add_argument("--pretrain-minutes", type=float, default=15.0)
    parser.add_argument("--fit-minutes", type=float, default=3.0)
    parser.add_argument("--rows", type=int, default=1000, help="training rows per development set")
    parser.add_argument("--valid-rows", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("runs/size-vocab"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/lm_size_vocab.jsonl"))
    parser.add_argument("--table", type=Path, metavar="JSONL", help="print a results file as a table, and stop")
    args = parser.parse_args()
    if args.table:
        print(table([json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]))
        return
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    header = {"commit": commit, "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "cpu": cpu_name(),
              "flags": " ".join(cpu_flags()), "threads": 1, "words": args.words, "pretrain_precision": pretrain_precision(),
              "pretrain_minutes_budget": args.pretrain_minutes, "fit_minutes_budget": args.fit_minutes}
    print(header, flush=True)
    train, valid = corpus_sample(args.words)
    print(f"sample: {len(train):,} documents, {sum(len(d.split()) for d in train):,} words; valid {len(valid)} "
          "articles", flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for name in args.variants:
        lm = {"kind": "lm", **pretrain_variant(name, args.out, train, valid, args.pretrain_minutes), **header}
        print(lm, flush=True)
        rows = [lm]
        for dataset in args.datasets:
            row = {"kind": "fit", **fit_variant(name, dataset, args.out, args.rows, args.valid_rows,
                                               args.fit_minutes), **header}
            print(row, flush=True)
            rows.append(row)
        with open(args.results, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    print(table([json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]))


if __name__ == "__main__":
    main()
