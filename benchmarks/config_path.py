"""Which ulmfit files a classify run's config passes through (issue 25): every file with a function that receives
the config or one of its sections, traced with sys.settrace during a tiny `ulmfit classify` (a 3-step tiny LM and
classifier on 40 texts, in a temporary folder). Prints the files in first-call order.

    python benchmarks/config_path.py
"""
import csv
import sys
import tempfile
from pathlib import Path

from ulmfit import config as C
from ulmfit.config import preset, apply_overrides
from ulmfit.pipeline import DataSpec, pretrain
KINDS = (C.StageConfig, C.TrainConfig, C.RunConfig, C.HeadConfig, C.ModelConfig, C.TokenizerConfig)
work = Path(tempfile.mkdtemp())
texts = ["the film is great and fun", "a bad dull film", "i loved the acting", "boring and far too long"] * 10
labels = ["pos", "neg", "pos", "neg"] * 10
sizes = ["model.emb_size=4", "model.hidden_size=6", "model.n_layers=2", "tokenizer.vocab_size=40", "max_steps=3"]
pretrain(apply_overrides(preset("tiny", "pretrain"), sizes), DataSpec.from_texts(texts, texts[:8]), work / "pre", force=True)
with open(work / "train.csv", "w", newline="") as f:
    csv.writer(f).writerows([("text", "label"), *zip(texts, labels)])
seen = []
def tracer(frame, event, arg):
    if event != "call":
        return None
    mod = frame.f_globals.get("__name__", "")
    if mod.startswith("ulmfit") and any(isinstance(v, KINDS) for v in frame.f_locals.values()):
        if not seen or seen[-1] != mod:
            seen.append(mod)
    return None
import ulmfit.cli as cli
sys.settrace(tracer)
try:
    cli.main(["classify", "--preset", "tiny", "--pretrained", str(work / "pre"), "--train", str(work / "train.csv"),
              "--out", str(work / "cls"), "--force", "--max-steps", "3"])
except SystemExit:
    pass
sys.settrace(None)
files = list(dict.fromkeys(seen))
print(len(files), "files:", " ".join(f.replace("ulmfit.", "") for f in files))
