"""Turn a finished `pretrain` run dir into an LM that ships inside ulmfit (issue 26): ulmfit/shipped/<name>/.

    python benchmarks/ship_lm.py runs/wiki-fwd --name ulmfit-wiki-fwd --command "$(cat runs/wiki-fwd.cmd)" \
        --wall-minutes 115 --cpu "AMD EPYC (Zen 4), 1 core, 1 thread"

Writes model.pt (the state_dict in fp16: half the bytes; every stage loads it into fp32 modules), the tokenizer
files, config.json (the run's, with "shipped" provenance added) and PROVENANCE.md, then prints the `ShippedSpec`
line (file sizes and sha256s) to paste into ulmfit/model_zoo.py's SHIPPED registry.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from ulmfit import checkpoint as ckpt
from ulmfit.data.download import sha256_file
from ulmfit.pretrained.model_zoo import SHIPPED_DIR
from ulmfit.text.tokenizer import tokenizer_files

MAX_MB = 30


def ship(run_dir: Path, name: str, command: str, wall_minutes: float, cpu: str, wt2: str = "") -> Path:
    meta, config, state, tokenizer = ckpt.load_run(run_dir, stages=("pretrain",))
    out = SHIPPED_DIR / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    ckpt.save_tensors(out / ckpt.WEIGHTS_FILE, half)
    for f in tokenizer_files(run_dir) + [run_dir / "vocab.txt"]:
        if f.is_file():
            shutil.copy2(f, out / f.name)
    history = meta.get("history", [])
    last = history[-1] if history else {}
    steps = last.get("step", 0)
    cfg = config.train
    tokens = steps * cfg.batch_size * cfg.bptt
    ids = run_dir / "data" / "train.ids.npy"
    corpus_tokens = f"{len(np.load(ids, mmap_mode='r')):,}" if ids.is_file() else "the"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    provenance = {"name": name, "command": command, "corpus_tokens": corpus_tokens, "commit": commit,
                  "corpus": meta.get("corpus"),
                  "hardware": cpu, "wall_minutes": wall_minutes, "steps": steps, "tokens_seen": tokens,
                  "valid_ppl_token": last.get("valid_ppl"), "valid_ppl_word": last.get("valid_ppl_word"),
                  "precision": config.run.precision, "shipped": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
                  "wikitext2": wt2}
    meta["shipped"] = provenance
    ckpt.write_json(out / ckpt.CONFIG_FILE, meta)
    m = config.model
    (out / "PROVENANCE.md").write_text(f"""# {name}

An AWD-LSTM language model pretrained by ulmfit itself (ULMFiT §3.1), shipped so that fine-tuning works offline.

- Model: embedding {m.emb_size}, hidden {m.hidden_size}, {m.n_layers} layers, tied weights, {m.vocab_size}
  SentencePiece {config.tokenizer.model_type} pieces (pre-rules {'on' if config.tokenizer.pre_rules else 'off'}),
  {'backward' if cfg.backwards else 'forward'}; stored in fp16 ({sum(v.numel() for v in half.values()):,} values).
- Corpus: `wikipedia_2015` (65.0M words of English Wikipedia, CC BY-SA 3.0; `ulmfit data list`), train part
  (every document but the 105 validation articles).
- Command: `{command}`
- Commit: {commit}
- Hardware: {cpu}; precision {config.run.precision}; wall time {wall_minutes:g} minutes (tokenizer training and encoding
  included).
- Training: {steps:,} optimiser steps of {cfg.batch_size} x {cfg.bptt} tokens = {tokens:,} tokens seen (of
  {corpus_tokens} in the corpus); STLR peak LR {cfg.lr:g}, dropout scale
  {m.dropout_scale:g}, AdamW ({cfg.adam_beta1}, {cfg.adam_beta2}), weight decay {cfg.weight_decay}.
- Validation (the 105 held-out articles): perplexity {last.get('valid_ppl', float('nan')):.2f} per token,
  {last.get('valid_ppl_word', float('nan')):.1f} per word.
- WikiText-2: {wt2 or 'see benchmarks/results/lm_wikitext2_ppl.txt'}
- Licence: the weights are released under Apache-2.0 with ulmfit; they were learnt from Wikipedia text (CC BY-SA 3.0).
""")
    files = [(p.name, sha256_file(p), p.stat().st_size) for p in sorted(out.iterdir()) if p.is_file()]
    size_mb = sum(s for _, _, s in files) / 1e6
    if size_mb > MAX_MB:
        raise SystemExit(f"{out} is {size_mb:.1f} MB, over the {MAX_MB} MB a shipped LM may take")
    print(json.dumps(provenance, indent=1))
    print(f"\n# paste into ulmfit/model_zoo.py SHIPPED ({size_mb:.1f} MB):")
    print(f"    ShippedSpec({name!r}, description=..., backwards={cfg.backwards}, files=(")
    for f in files:
        print(f"        {f!r},")
    print("    )),")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--command", required=True, help="the command that trained the run, for PROVENANCE.md")
    parser.add_argument("--wall-minutes", type=float, required=True)
    parser.add_argument("--cpu", required=True, help="lscpu's model name, cores and threads used")
    parser.add_argument("--wt2", default="", help="the WikiText-2 figures, for PROVENANCE.md")
    args = parser.parse_args()
    ship(args.run_dir, args.name, args.command, args.wall_minutes, args.cpu, args.wt2)


if __name__ == "__main__":
    main()
