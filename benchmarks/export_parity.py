"""The exported model (`ulmfit export`, TorchScript) against the PyTorch model it came from (issue 17 §4).

For a classifier run dir and a registry dataset's test split (or a seeded sample, `--limit`): exports it in fp32
and in int8 to a temporary folder, then scores the texts with `TextClassifier.from_pretrained(...)` and with
`ulmfit.apps.exported.load(...)`, in fp32 and int8, and prints per pair the largest probability difference, the share of
identical predicted labels and each one's accuracy, plus each pass's documents/s (median of `--repeats` passes,
after one untimed pass; the four models interleaved). Both sides average in the run's TF-IDF + LR baseline where
the run chose it, unless `--no-baseline`.

    python benchmarks/export_parity.py RUN_DIR --dataset clickbait [--out benchmarks/results/export_parity.txt]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from int8_accuracy import load_texts  # noqa: E402  (the same test split and sample)
from ulmfit.predict import TextClassifier  # noqa: E402
from ulmfit.apps.export import export_classifier  # noqa: E402
from ulmfit.apps.exported import load  # noqa: E402
from ulmfit.runtime import cpu_flags, cpu_name  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--limit", type=int, help="a seeded random sample of N test texts (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    texts, labels, subset = load_texts(args.dataset, "test", args.limit, 0)
    baseline = not args.no_baseline
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for int8 in (False, True):
            kind = "int8" if int8 else "fp32"
            export_classifier(args.run_dir, Path(tmp) / kind, int8=int8, baseline=baseline)
            models[f"pytorch {kind}"] = TextClassifier.from_pretrained(args.run_dir, device="cpu", baseline=baseline,
                                                                       int8=int8)
            models[f"exported {kind}"] = load(Path(tmp) / kind)
        probs, seconds = {}, {name: [] for name in models}
        for name, model in models.items():
            probs[name] = model.predict_proba(texts)                  # untimed: warms each model's kernels up
        for _ in range(args.repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model.predict_proba(texts)
                seconds[name].append(time.perf_counter() - start)
    names = models["pytorch fp32"].label_names
    truth = np.array([names.index(y) for y in labels])
    rows = []
    for kind in ("fp32", "int8"):
        ours, exported = probs[f"pytorch {kind}"], probs[f"exported {kind}"]
        rows.append({"kind": kind, "max_abs_diff": float(np.abs(ours - exported).max()),
                     "same_prediction": float((ours.argmax(1) == exported.argmax(1)).mean()),
                     "pytorch_accuracy": float((ours.argmax(1) == truth).mean()),
                     "exported_accuracy": float((exported.argmax(1) == truth).mean()),
                     "pytorch_docs_per_s": len(texts) / statistics.median(seconds[f"pytorch {kind}"]),
                     "exported_docs_per_s": len(texts) / statistics.median(seconds[f"exported {kind}"])})
    lines = [f"{args.dataset}: {subset}; {'baselines as the run chose' if baseline else 'classifier alone'}; "
             f"CPU: {cpu_name()} ({' '.join(cpu_flags())}), {torch.get_num_threads()} threads; "
             f"engine {torch.backends.quantized.engine}",
             f"{'':<5} {'max |dp|':>9} {'same label':>11} {'acc pytorch':>12} {'acc exported':>13} "
             f"{'docs/s pytorch':>15} {'docs/s exported':>16}"]
    lines += [f"{r['kind']:<5} {r['max_abs_diff']:>9.2e} {100 * r['same_prediction']:>10.2f}% "
              f"{100 * r['pytorch_accuracy']:>11.2f}% {100 * r['exported_accuracy']:>12.2f}% "
              f"{r['pytorch_docs_per_s']:>15.1f} {r['exported_docs_per_s']:>16.1f}" for r in rows]
    result = {"dataset": args.dataset, "subset": subset, "baseline": baseline, "cpu": cpu_name(), "rows": rows}
    lines.append(json.dumps(result))
    print("\n".join(lines))
    if args.out:
        args.out.write_text(f"# python benchmarks/export_parity.py {' '.join(argv or sys.argv[1:])}\n"
                            + "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
