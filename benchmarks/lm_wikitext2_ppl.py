"""WikiText-2 perplexity per word of pretrained LMs (issue 26): the yardstick for the LM that ships with ulmfit.

Each LM reads WikiText-2's valid and test splits through its own tokenizer; per word = exp(total NLL / WikiText
words), the words counted as WikiText does (whitespace words + one end-of-line per line: 217,646 valid, 245,569
test), so subword models of any vocabulary compare with each other and with word-level results (AWD-LSTM: 65.8
test, after GPU-days on WikiText-2 alone). WikiText-2 is tokenised (` @-@ `, `<unk>`): an LM pretrained on raw
Wikipedia pays for text it never saw in that form, which `--detok` undoes (the words are still counted as above).

    python benchmarks/lm_wikitext2_ppl.py ulmfit-wiki-fwd runs/demo/pretrain [--split test] [--detok]
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import time

import torch

from ulmfit.data import download as datasets
from ulmfit.predict import LanguageModel
from ulmfit.text.batching import LMBatches
from ulmfit.train.evaluate import evaluate_lm
from ulmfit.pretrained.model_zoo import resolve_pretrained
from ulmfit.pipeline import count_words
from ulmfit.runtime import Runtime, cpu_flags, cpu_name

_DETOK = [(re.compile(r" @(.)@ "), r"\1"), (re.compile(r" ([.,;:!?)'])"), r"\1"), (re.compile(r"\( "), "(")]


def detokenize(doc: str) -> str:
    for pattern, repl in _DETOK:
        doc = pattern.sub(repl, doc)
    return doc


def wt2_perplexity(lm_dir, split: str = "test", detok: bool = False, batch_size: int = 16, bptt: int = 70) -> dict:
    run_dir = resolve_pretrained(lm_dir)
    model = LanguageModel.from_pretrained(run_dir, device="cpu")
    docs = datasets.load_lm_corpus("wikitext2")[split]
    n_words = count_words(docs)                                # counted on the tokenised text, always
    text = [detokenize(d) for d in docs] if detok else docs
    encoded = model.tokenizer.encode_documents(text)
    ids = torch.tensor([i for e in encoded for i in e], dtype=torch.int64).numpy()
    offsets = torch.tensor([0] + [len(e) for e in encoded]).cumsum(0).numpy()
    batches = LMBatches(ids, offsets, batch_size, bptt, shuffle=False, seed=0,
                        backwards=model.stage_config.train.backwards, variable_length=False)
    start = time.perf_counter()
    result = evaluate_lm(model, batches, Runtime(device=torch.device("cpu")), n_words)
    return {"lm": str(lm_dir), "split": split, "detok": detok, "tokens": int(len(ids)), "words": n_words,
            "ppl_token": round(result["valid_ppl"], 2), "ppl_word": round(result["valid_ppl_word"], 1),
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lms", nargs="+", help="LM run dirs or registry names (e.g. ulmfit-wiki-fwd)")
    parser.add_argument("--split", default="test", choices=("valid", "test"))
    parser.add_argument("--detok", action="store_true", help="also score each LM on detokenised WikiText-2")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# WikiText-2 {args.split} perplexity per word; commit {commit}; {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
    print(f"# cpu: {cpu_name()} ({' '.join(cpu_flags())}), {args.threads} thread(s); torch {torch.__version__}; "
          f"python {platform.python_version()}")
    for lm in args.lms:
        for detok in ([False, True] if args.detok else [False]):
            print(json.dumps(wt2_perplexity(lm, args.split, detok)), flush=True)


if __name__ == "__main__":
    main()
