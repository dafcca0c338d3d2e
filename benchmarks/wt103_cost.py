"""What the paper's recipe costs on this CPU when it starts from the published WikiText-103 LM (issue 15 §7).

The wt103 files cannot be downloaded here, so a model of exactly their size stands in: random weights, embedding
400, hidden 1152, 3 layers, a 60,000-word fastai vocabulary (WikiText-2's words, then fillers), written in fastai's
file format and brought in by `ulmfit lm import` (the user's path). Speed does not depend on the weights' values.
From it, the `paper` preset's recipe (fp32 on a CPU) on N short documents (clickbait headlines) and N long ones
(IMDb reviews), through the library's own `finetune` and `classify`:

  LM fine-tuning   the target vocabulary is built (fastai's make_vocab; match_embeds), the texts encoded, then the
                   preset's epochs (first one with only the top group trainable); measured: the setup, and tokens/s
                   of each stage over --lm-steps steps (0: one whole epoch); the whole recipe = setup + each epoch's
                   tokens / that stage's tokens/s
  classifier       gradual unfreezing over the preset's epochs; measured: the setup and the seconds of each
                   unfreezing stage over --cls-steps steps shared out among the stages (0: the whole run), scaled
                   to a whole epoch by padded tokens (an epoch starts with its longest batch)

Prints a table (measured seconds, and the whole recipe's minutes for N and per 1,000 documents) with the CPU, and
`--json FILE` writes the figures.

    python benchmarks/wt103_cost.py --docs 5000 [--lm-steps-short 0 --cls-steps-short 0 --lm-steps-long 60 ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import pickle
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ulmfit.data import download as datasets  # noqa: E402
from ulmfit.model.awd_lstm import LanguageModel  # noqa: E402
from ulmfit.text.batching import ClassificationBatches  # noqa: E402
from ulmfit.config import TokenizerConfig, preset  # noqa: E402
from ulmfit.text.corpus import load_corpus  # noqa: E402
from ulmfit.data.dataspec import DataSpec  # noqa: E402
from ulmfit.pretrained.fastai_interop import ulmfit_to_fastai  # noqa: E402
from ulmfit.text.fastai_tokenizer import FastaiTokenizer  # noqa: E402
from ulmfit.files import read_json  # noqa: E402
from ulmfit.pretrained.model_zoo import import_files  # noqa: E402
from ulmfit.pipeline import classify, finetune  # noqa: E402
from ulmfit.runtime import cpu_flags, cpu_name  # noqa: E402
from ulmfit.train.schedule import unfreeze_plan  # noqa: E402
from ulmfit.train.loop import stages_from_plan  # noqa: E402

WT103_VOCAB = 60000


def wt103_sized_files(work: Path) -> tuple[Path, Path]:
    """Random weights at wt103's size in fastai's format, and a 60k fastai vocabulary of real words + fillers."""
    wiki = datasets.load_lm_corpus("wikitext2")["train"]
    vocab = FastaiTokenizer.train(wiki, TokenizerConfig(model_type="fastai", vocab_size=WT103_VOCAB, min_freq=1),
                                  work / "tok").vocab
    vocab = [w for w in vocab if w != "xxfake"]
    vocab += [f"xxfiller{i}" for i in range(WT103_VOCAB - len(vocab))]
    model_cfg = dataclasses.replace(preset("paper", "pretrain").model, vocab_size=WT103_VOCAB, pad_id=1)
    torch.manual_seed(0)
    state = ulmfit_to_fastai(LanguageModel(model_cfg).state_dict(), model_cfg.n_layers)
    buf = io.BytesIO()
    torch.save(state, buf)
    (work / "lstm_fwd.pth").write_bytes(buf.getvalue())
    (work / "itos_wt103.pkl").write_bytes(pickle.dumps(vocab))
    return work / "lstm_fwd.pth", work / "itos_wt103.pkl"


def history(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r.get("kind") == "epoch"]


def lm_cost(lm_dir, texts, valid, work, steps, threads) -> dict:
    cfg = preset("paper", "finetune")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=1 if steps == 0 else cfg.train.epochs),
                              run=dataclasses.replace(cfg.run, precision="fp32", max_steps=steps, threads=threads,
                                                      eval_tokens=20000))
    start = time.perf_counter()
    result = finetune(cfg, lm_dir, DataSpec.from_texts(train=texts, valid=valid), work / "ft", force=True)
    wall = time.perf_counter() - start
    rows = history(work / "ft")
    trained = sum(r["seconds"] for r in rows)
    rate = {r["stage"]: r["items_per_s"] for r in rows}          # tokens/s of each stage ("last", "all")
    epochs = preset("paper", "finetune").train.epochs               # the recipe: 1 epoch "last", then "all"
    per_epoch = {stage: result["train_tokens"] / tps for stage, tps in rate.items()}
    recipe = (wall - trained) + per_epoch.get("last", per_epoch["all"]) + (epochs - 1) * per_epoch["all"]
    return {"wall_s": round(wall, 1), "setup_s": round(wall - trained, 1), "train_tokens": result["train_tokens"],
            "tokens_per_s": rate, "steps_measured": rows[-1]["step"], "epochs_in_recipe": epochs,
            "recipe_s": round(recipe, 1), "vocab": read_json(work / "ft" / "config.json")["config"]["model"][
                "vocab_size"]}


def classifier_cost(ft_dir, texts, labels, valid, work, steps, threads) -> dict:
    cfg = preset("paper", "classify")
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, precision="fp32", max_steps=steps,
                                                           threads=threads))
    start = time.perf_counter()
    classify(cfg, ft_dir, DataSpec.from_texts(train=(texts, labels), valid=valid), work / "cls", force=True)
    wall = time.perf_counter() - start
    rows = history(work / "cls")
    trained = sum(r["seconds"] for r in rows)
    rate = {r["stage"]: r["items_per_s"] for r in rows}           # docs/s of each unfreezing stage, as measured
    names = ["embedding"] + [f"lstm_{i}" for i in range(cfg.model.n_layers)] + ["head"]
    stages = stages_from_plan(names, unfreeze_plan(len(names), cfg.train.strategy, cfg.train.epochs))
    # A capped run sees each epoch's first batches only, and an epoch starts with its longest batch: docs/s from
    # them would overstate the cost of long documents. So the cost is carried by padded tokens (batch x longest
    # document), the work a step does: seconds per padded token in the measured steps x an epoch's padded tokens.
    ids, offsets = load_corpus(work / "cls" / "data" / "train")
    batches = ClassificationBatches(ids, offsets, np.zeros(len(offsets) - 1, dtype=np.int64), cfg.train.batch_size,
                                    shuffle=True, seed=cfg.run.seed)
    recipe, per_epoch, step = wall - trained, {}, 0
    for row in rows:
        padded = [len(b) * int(batches.lengths[b].max()) for b in batches.batch_indices(row["epoch"] - 1)]
        done = row["step"] - step
        step = row["step"]
        per_epoch[row["stage"]] = row["seconds"] / sum(padded[:done]) * sum(padded)
    recipe += sum(s.epochs * per_epoch[s.name] for s in stages)
    return {"wall_s": round(wall, 1), "setup_s": round(wall - trained, 1), "docs_per_s_measured": rate,
            "epoch_s": {k: round(v, 1) for k, v in per_epoch.items()},
            "epochs_in_recipe": {s.name: s.epochs for s in stages}, "recipe_s": round(recipe, 1), "steps_measured": rows[-1]["step"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--lm-steps-short", type=int, default=0, help="0: one whole epoch")
    parser.add_argument("--cls-steps-short", type=int, default=0, help="0: the whole classifier run")
    parser.add_argument("--lm-steps-long", type=int, default=60)
    parser.add_argument("--cls-steps-long", type=int, default=40)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", choices=("short", "long"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    flags = " ".join(f for f in cpu_flags() if f.startswith(("avx", "amx")))
    print(f"CPU: {cpu_name()} ({flags}); {args.threads} threads; torch {torch.__version__}", flush=True)
    out = {"cpu": cpu_name(), "flags": flags, "threads": args.threads, "docs": args.docs}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        weights, vocab = wt103_sized_files(work)
        made = time.perf_counter() - start
        start = time.perf_counter()
        import_files(weights, vocab, work / "wt103", "paper")
        out["import_s"] = round(time.perf_counter() - start, 1)
        print(f"wt103-size files made in {made:.0f} s; `ulmfit lm import` took {out['import_s']} s", flush=True)
        clickbait, imdb = datasets.load_labelled("clickbait"), datasets.load_labelled("imdb")
        kinds = {"short": (clickbait, args.lm_steps_short, args.cls_steps_short),
                 "long": (imdb, args.lm_steps_long, args.cls_steps_long)}
        for kind, (splits, lm_steps, cls_steps) in kinds.items():
            if args.only and kind != args.only:
                continue
            pick = random.Random(0).sample(range(len(splits["train"][0])), args.docs)   # the splits are class-sorted
            texts, labels = [splits["train"][0][i] for i in pick], [splits["train"][1][i] for i in pick]
            held = random.Random(1).sample(range(len(splits["valid"][0])), 200)
            valid = ([splits["valid"][0][i] for i in held], [splits["valid"][1][i] for i in held])
            (work / kind).mkdir()
            lm = lm_cost(work / "wt103", texts, valid[0], work / kind, lm_steps, args.threads)
            print(f"{kind}: LM fine-tuning {json.dumps(lm)}", flush=True)
            cls = classifier_cost(work / kind / "ft", texts, labels, valid, work / kind, cls_steps, args.threads)
            print(f"{kind}: classifier {json.dumps(cls)}", flush=True)
            total = lm["recipe_s"] + cls["recipe_s"]
            out[kind] = {"lm": lm, "classifier": cls, "recipe_min": round(total / 60, 1),
                         "per_1000_docs_min": round(total / 60 * 1000 / args.docs, 1),
                         "tokens_per_doc": round(lm["train_tokens"] / args.docs, 1)}
            print(f"{kind} ({args.docs} docs, {out[kind]['tokens_per_doc']} tokens each): whole recipe "
                  f"{out[kind]['recipe_min']} min = LM {lm['recipe_s'] / 60:.1f} + classifier "
                  f"{cls['recipe_s'] / 60:.1f}; per 1,000 documents {out[kind]['per_1000_docs_min']} min", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
