"""ulmfit's import and export against fastai itself, at the published model's size (issue 15 §5).

For the forward and the backward model: fastai 2.8.12 builds `get_language_model(AWD_LSTM, 60000)` (the
wt103 size: embedding 400, hidden 1152, 3 layers, 60k words) with random weights and saves it with
`Learner.save`; `ulmfit lm import` reads the file and the vocabulary pickle; both score the same ids in eval mode.
Then `ulmfit lm export --fastai` writes the imported run back and fastai's `LMLearner.load_pretrained` loads it
into a fresh learner. Prints the max absolute logit difference of each (target: <= 1e-5 in fp32), the CPU and the
versions, and exits 1 if any check misses.

    python benchmarks/fastai_equivalence.py [--vocab 60000] [--tokens 2x70]
"""
from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ulmfit.predict import LanguageModel  # noqa: E402
from ulmfit.pretrained.fastai_interop import export_fastai  # noqa: E402
from ulmfit.text.fastai_tokenizer import FASTAI_SPECIALS  # noqa: E402
from ulmfit.pretrained.model_zoo import import_files  # noqa: E402
from ulmfit.runtime import cpu_flags, cpu_name  # noqa: E402

TOLERANCE = 1e-5


def learner(work: Path, vocab: list[str], backwards: bool, seed: int):
    import pandas as pd
    from fastai.text.all import AWD_LSTM, TextDataLoaders, language_model_learner
    df = pd.DataFrame({"text": [" ".join(vocab[9:20])] * 4, "is_valid": [False, False, True, True]})
    dls = TextDataLoaders.from_df(df, path=work, text_col="text", is_lm=True, valid_col="is_valid",
                                  text_vocab=vocab, bs=2, seq_len=8, backwards=backwards)
    torch.manual_seed(seed)
    learn = language_model_learner(dls, AWD_LSTM, pretrained=False, backwards=backwards)
    learn.model.eval()
    return learn


def fastai_logits(model, ids):
    model.reset()
    with torch.no_grad():
        return model(ids)[0]


def ulmfit_logits(run_dir, ids):
    with torch.no_grad():
        return LanguageModel.from_pretrained(run_dir, device="cpu")(ids).logits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=60000, help="vocabulary size (wt103's: 60000)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=70)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import fastai
    vocab = list(FASTAI_SPECIALS) + [f"word{i}" for i in range(args.vocab - len(FASTAI_SPECIALS))]
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    print(f"fastai {fastai.__version__}, torch {torch.__version__}; CPU: {cpu_name()} "
          f"({' '.join(f for f in cpu_flags() if f.startswith(('avx', 'amx')))})")
    print(f"model: fastai AWD_LSTM default config (400/1152/3 layers, tied), vocabulary {args.vocab}, "
          f"ids {args.batch}x{args.seq}, eval mode, fp32")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "itos.pkl").write_bytes(pickle.dumps(vocab))
        for name, backwards in (("forward", False), ("backward", True)):
            start = time.perf_counter()
            learn = learner(work, vocab, backwards, seed=int(backwards))
            weights = learn.save(f"lm_{name}", with_opt=True)
            run = work / f"run_{name}"
            import_files(weights, work / "itos.pkl", run, "paper", backwards=backwards)
            diff = (ulmfit_logits(run, ids) - fastai_logits(learn.model, ids)).abs().max().item()
            failed |= diff > TOLERANCE
            print(f"import {name:<8}  fastai Learner.save -> ulmfit lm import: max |logit diff| = {diff:.2e}  "
                  f"({'ok' if diff <= TOLERANCE else 'FAIL'}, {time.perf_counter() - start:.1f} s)")
            start = time.perf_counter()
            files = export_fastai(run, work / f"export_{name}")
            target = learner(work, vocab, backwards, seed=10 + int(backwards))
            target.load_pretrained(files["weights"], files["vocab"])
            target.model.eval()
            diff = (fastai_logits(target.model, ids) - ulmfit_logits(run, ids)).abs().max().item()
            failed |= diff > TOLERANCE
            print(f"export {name:<8}  ulmfit lm export -> fastai load_pretrained: max |logit diff| = {diff:.2e}  "
                  f"({'ok' if diff <= TOLERANCE else 'FAIL'}, {time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
