"""ulmfit beside fastai 2.8.12 on the same CPU, same shapes, same run, interleaved (issue 17 §3).

Four workloads at the `paper` sizes (embedding 400, hidden 1152, 3 layers, vocabulary 30,000), random weights:

  classifier inference   64 documents x 256 tokens, eval mode, no gradients: fastai's `get_text_classifier(AWD_LSTM)`
                         (SentenceEncoder: BPT3C in chunks of 72) vs ulmfit's TextClassifier (BPT3C, chunks of 70)
                         in fp32 and in int8 (ulmfit.model.quantize; each int8 engine of --engines: by default this
                         CPU's choice, and "x86" beside it where the choice is another)
  classifier training    32 x 256, forward + backward + an SGD step, all layers trainable
  LM inference           32 x 70 tokens, eval mode: fastai's `get_language_model(AWD_LSTM)` vs ulmfit's
                         LanguageModel (fp32, and int8 for ulmfit)
  LM training            32 x 70, forward + backward + step (the LM's cross-entropy)

Every repeat times each cell once, in turn, so both libraries see the same machine state; the medians are printed
with the ratios and the CPU. fastai installs from the package registry without torchvision: `make install-fastai`.

    python benchmarks/vs_fastai.py [--repeats 5] [--threads 2] [--infer-docs 64] [--engines onednn,x86] [--out FILE]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ulmfit.model.awd_lstm import LanguageModel  # noqa: E402
from ulmfit.model.classifier import TextClassifier  # noqa: E402
from ulmfit.config import preset  # noqa: E402
from ulmfit.model.quantize import int8_engine, quantize_classifier, quantize_language_model  # noqa: E402
from ulmfit.runtime import cpu_flags, cpu_name  # noqa: E402

VOCAB, DOC_LEN, INFER_DOCS, TRAIN_DOCS, LM_BATCH, BPTT = 30000, 256, 64, 32, 32, 70


def fastai_models():
    from fastai.text.all import AWD_LSTM, get_language_model, get_text_classifier
    return (get_text_classifier(AWD_LSTM, VOCAB, 2, seq_len=72, max_len=72 * 20),
            get_language_model(AWD_LSTM, VOCAB))


def ulmfit_models():
    cls_cfg = preset("paper", "classify")
    cls = TextClassifier.from_config(dataclasses.replace(cls_cfg.model, vocab_size=VOCAB), 2, cls_cfg.head,
                                     cls_cfg.train.bptt)
    lm = LanguageModel(dataclasses.replace(preset("paper", "pretrain").model, vocab_size=VOCAB))
    return cls, lm


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cells(engines):
    """name -> (items per call, unit, a function that runs one call); one int8 cell per engine in `engines`."""
    g = torch.Generator().manual_seed(0)
    docs = torch.randint(2, VOCAB, (INFER_DOCS, DOC_LEN), generator=g)       # no padding: the same work for both
    mask = torch.ones_like(docs, dtype=torch.bool)
    train_docs, train_mask = docs[:TRAIN_DOCS], mask[:TRAIN_DOCS]
    labels = torch.randint(0, 2, (TRAIN_DOCS,), generator=g)
    lm_x = torch.randint(2, VOCAB, (LM_BATCH, BPTT), generator=g)
    lm_y = torch.randint(2, VOCAB, (LM_BATCH, BPTT), generator=g)
    fa_cls, fa_lm = fastai_models()
    ul_cls, ul_lm = ulmfit_models()
    int8 = {}
    for engine in engines:
        cls8, lm8 = ulmfit_models()
        cls8.load_state_dict(ul_cls.state_dict())
        lm8.load_state_dict(ul_lm.state_dict())
        int8[engine] = quantize_classifier(cls8.eval(), engine), quantize_language_model(lm8.eval(), engine)

    def fa_cls_infer():
        fa_cls.eval()
        with torch.inference_mode():
            fa_cls(docs)

    def ul_cls_infer(model, engine=None):
        def run():
            if engine:                         # process-wide in torch; each int8 model runs on its own engine
                torch.backends.quantized.engine = engine
            model.eval()
            with torch.inference_mode():
                model(docs, mask)
        return run

    def train_step(model, loss_fn):
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)

        def run():
            model.train()
            opt.zero_grad()
            loss_fn(model).backward()
            opt.step()
        return run

    def fa_lm_infer():
        fa_lm.eval()
        fa_lm.reset()
        with torch.inference_mode():
            fa_lm(lm_x)

    def ul_lm_infer(model, engine=None):
        def run():
            if engine:
                torch.backends.quantized.engine = engine
            model.eval()
            with torch.inference_mode():
                model(lm_x)
        return run

    def fa_lm_loss(m):
        m.reset()
        return F.cross_entropy(m(lm_x)[0].flatten(0, 1), lm_y.flatten())

    return {
        "classifier inference: fastai fp32": (INFER_DOCS, "docs/s", fa_cls_infer),
        "classifier inference: ulmfit fp32": (INFER_DOCS, "docs/s", ul_cls_infer(ul_cls)),
        **{f"classifier inference: ulmfit int8 {e}": (INFER_DOCS, "docs/s", ul_cls_infer(m[0], e))
           for e, m in int8.items()},
        "classifier training: fastai fp32": (TRAIN_DOCS, "docs/s", train_step(
            fa_cls, lambda m: F.cross_entropy(m(train_docs)[0], labels))),
        "classifier training: ulmfit fp32": (TRAIN_DOCS, "docs/s", train_step(
            ul_cls, lambda m: F.cross_entropy(m(train_docs, train_mask), labels))),
        "LM inference: fastai fp32": (LM_BATCH * BPTT, "tokens/s", fa_lm_infer),
        "LM inference: ulmfit fp32": (LM_BATCH * BPTT, "tokens/s", ul_lm_infer(ul_lm)),
        **{f"LM inference: ulmfit int8 {e}": (LM_BATCH * BPTT, "tokens/s", ul_lm_infer(m[1], e))
           for e, m in int8.items()},
        "LM training: fastai fp32": (LM_BATCH * BPTT, "tokens/s", train_step(fa_lm, fa_lm_loss)),
        "LM training: ulmfit fp32": (LM_BATCH * BPTT, "tokens/s", train_step(
            ul_lm, lambda m: F.cross_entropy(m(lm_x).logits.flatten(0, 1), lm_y.flatten()))),
    }


def main() -> int:
    global INFER_DOCS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (each cell once per round)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--infer-docs", type=int, default=INFER_DOCS, help="documents per classifier-inference call")
    parser.add_argument("--engines", help="int8 engines, comma-separated (default: this CPU's choice, and x86 "
                        "beside it where that is another)")
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    args = parser.parse_args()
    INFER_DOCS = args.infer_docs
    engines = args.engines.split(",") if args.engines else list(dict.fromkeys([int8_engine(), "x86"]))
    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    import fastai
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    flags = " ".join(f for f in cpu_flags() if f.startswith(("avx", "amx")))
    say(f"CPU: {cpu_name()} ({flags or 'no AVX'}); torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"fastai {fastai.__version__}; int8 engines {', '.join(engines)} (this CPU's choice: {int8_engine()})")
    say(f"paper sizes (400/1152/3 layers), vocabulary {VOCAB}; classifier: {INFER_DOCS} (inference) / {TRAIN_DOCS} "
        f"(training) documents of {DOC_LEN} tokens; LM: {LM_BATCH} x {BPTT}; 1 warm-up + {args.repeats} rounds, "
        "interleaved; medians")
    work = cells(engines)
    for _, _, fn in work.values():           # warm-up: oneDNN primitives, allocator
        fn()
    times = {name: [] for name in work}
    for _ in range(args.repeats):
        for name, (_, _, fn) in work.items():
            times[name].append(timed(fn))
    rate = {name: work[name][0] / statistics.median(t) for name, t in times.items()}
    say()
    say(f"{'cell':<38} {'rate':>10}  unit      median s   min s")
    for name, t in times.items():
        say(f"{name:<38} {rate[name]:>10.1f}  {work[name][1]:<8} {statistics.median(t):>8.3f} {min(t):>7.3f}")
    say()
    for task in ("classifier inference", "classifier training", "LM inference", "LM training"):
        base = rate[f"{task}: fastai fp32"]
        for name in work:
            if name.startswith(task) and "ulmfit" in name:
                say(f"{name} / fastai fp32: {rate[name] / base:.2f}x")
    if args.out:
        args.out.write_text("# python benchmarks/vs_fastai.py " + " ".join(sys.argv[1:]) + "\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
