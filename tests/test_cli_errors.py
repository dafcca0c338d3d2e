"""Bad input across the whole CLI (issue 7 §5): each malformed input gives one line on stderr, exit code 2, no
traceback, and leaves every existing file as it was.

A session fixture trains a tiny LM and classifier once (in-process, a few steps on a synthetic corpus); every case
then calls `ulmfit.cli.main([...])` in-process, except two true subprocess checks at the end.
"""
import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ulmfit import checkpoint as ckpt
from ulmfit.cli import main

WORDS = "the a movie film plot actor was is and it this very story scene music ending".split()
LABEL_WORDS = {"pos": "good great fine happy lovely".split(), "neg": "bad awful poor sad grim".split()}
TRAIN = ["--preset", "tiny", "--threads", "1"]


def _texts(rng, n, words):
    return [" ".join(rng.choice(words) for _ in range(rng.randint(5, 15))).capitalize() + "." for _ in range(n)]


def _write_csv(path: Path, rows, header=("text", "label")) -> Path:
    import csv
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """A pretrain run, a classifier on it, a foreign tokenizer and the data they came from."""
    root = tmp_path_factory.mktemp("cli")
    rng = random.Random(0)
    txts = []
    for i in range(10):
        txts.append(root / f"doc{i}.txt")
        txts[-1].write_text("\n".join(_texts(rng, 20, WORDS + LABEL_WORDS["pos"] + LABEL_WORDS["neg"])) + "\n")
    rows = [(text, label) for label in ("pos", "neg") for text in _texts(rng, 40, WORDS + LABEL_WORDS[label])]
    labelled = _write_csv(root / "labelled.csv", rows)
    odd = [root / f"odd{i}.txt" for i in range(5)]             # other words: another tokenizer, another vocab size
    for path in odd:
        path.write_text(" ".join("".join(rng.choice("qxzjkvwy") for _ in range(rng.randint(3, 8)))
                                 for _ in range(300)) + "\n")
    threads = torch.get_num_threads()
    try:
        assert main(["pretrain", "--train", *map(str, txts), "--out", str(root / "pre"), "--max-steps", "3",
                     "--set", "tokenizer.vocab_size=70", *TRAIN]) == 0
        assert main(["classify", "--pretrained", str(root / "pre"), "--train", str(labelled), "--out",
                     str(root / "cls"), "--max-steps", "2", *TRAIN]) == 0
        assert main(["tokenizer", "train", "--train", *map(str, odd), "--out", str(root / "odd_tok"),
                     "--preset", "tiny", "--set", "tokenizer.vocab_size=120"]) == 0
    finally:
        torch.set_num_threads(threads)
    return SimpleNamespace(root=root, pre=root / "pre", cls=root / "cls", txts=[str(t) for t in txts],
                           labelled=labelled, odd_tok=root / "odd_tok")


def _snapshot(*dirs: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for d in dirs if d.exists() for p in sorted(d.rglob("*")) if p.is_file()}


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("data"))
    return dst


# ---- the cases: (id, argv builder, what the message must say) ------------------------------------------------
# A builder gets (runs, tmp, monkeypatch) and returns the argv; it may create files in tmp or patch things.

def _classify(r, tmp, *extra, train=None, out="out"):
    return ["classify", "--pretrained", str(r.pre), "--train", str(train or r.labelled), "--out", str(tmp / out),
            *TRAIN, *extra]


def _pretrain(r, tmp, *extra):
    return ["pretrain", "--train", *r.txts, "--out", str(tmp / "out"), *TRAIN, *extra]


def _bad_file(tmp, name, data: bytes):
    (tmp / name).write_bytes(data)
    return tmp / name


def _model_dir_without(r, tmp, name):
    run = _copy_run(r.cls, tmp / "cls")
    (run / name).unlink()
    return ["predict", str(run), "a good film"]


def _foreign_tokenizer(r, tmp, keep_fingerprint: bool):
    run = _copy_run(r.cls, tmp / "cls")
    shutil.copy(r.odd_tok / ckpt.TOKENIZER_FILE, run / ckpt.TOKENIZER_FILE)
    if not keep_fingerprint:                     # an old-style config without the fingerprint: the size check fires
        meta = json.loads((run / ckpt.CONFIG_FILE).read_text())
        del meta["tokenizer_fingerprint"]
        (run / ckpt.CONFIG_FILE).write_text(json.dumps(meta))
    return ["predict", str(run), "a good film"]


def _truncated(r, tmp):
    run = _copy_run(r.cls, tmp / "cls")
    data = (run / ckpt.WEIGHTS_FILE).read_bytes()
    (run / ckpt.WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    return ["evaluate", str(run), "--data", str(r.labelled)]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _pickled_code(r, tmp, name):
    run = _copy_run(r.cls if name == ckpt.WEIGHTS_FILE else r.pre, tmp / "run")
    torch.save({"weights": torch.ones(1), "x": _Payload(tmp / "pwned")}, run / name)
    if name == ckpt.WEIGHTS_FILE:
        return ["predict", str(run), "a good film"]
    for name in (ckpt.WEIGHTS_FILE, ckpt.CONFIG_FILE):     # an unfinished run: resume.pt is the latest state
        (run / name).unlink()
    return ["pretrain", "--train", *r.txts, "--out", str(run), "--resume", "--tokenizer", str(r.pre), *TRAIN]


def _without_cuda(monkeypatch, argv):
    # the runtime picks CUDA wherever torch sees a GPU: hide it, so this is a CPU-only host on every machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return argv


def _full_disk(r, tmp, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", no_space)
    return ["finetune", "--pretrained", str(r.pre), "--train", *r.txts, "--out", str(tmp / "out"), "--max-steps",
            "1", *TRAIN]


def _full_disk_predictions(r, tmp, monkeypatch):
    _write_csv(tmp / "in.csv", [("a good film", "pos")])
    (tmp / "pred.csv").write_text("old predictions\n")
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    return ["predict", str(r.cls), "--file", str(tmp / "in.csv"), "--out", str(tmp / "pred.csv")]


CASES = [
    # files
    ("empty-csv", lambda r, t, m: _classify(r, t, train=_bad_file(t, "e.csv", b"")), "empty"),
    ("binary-csv", lambda r, t, m: _classify(r, t, train=_bad_file(t, "b.csv", bytes(range(256)) * 8)), "UTF-8"),
    ("latin1-csv", lambda r, t, m: _classify(r, t, train=_bad_file(t, "l.csv", "text,label\ncaf\xe9,a\n"
                                                                    .encode("latin-1"))), "not UTF-8"),
    ("binary-txt-corpus", lambda r, t, m: ["pretrain", "--train", str(_bad_file(t, "b.txt", b"\xff\xfe\x00" * 99)),
                                            "--out", str(t / "out"), *TRAIN], "UTF-8"),
    ("empty-txt-corpus", lambda r, t, m: ["pretrain", "--train", str(_bad_file(t, "e.txt", b"")),
                                          "--out", str(t / "out"), *TRAIN], "empty"),
    ("missing-train-file", lambda r, t, m: _classify(r, t, train=t / "nope.csv"), "no such file"),
    ("missing-text-col", lambda r, t, m: _classify(r, t, train=_write_csv(t / "c.csv", [("x", "a")],
                                                                          ("body", "label"))), "no column 'text'"),
    ("missing-label-col", lambda r, t, m: _classify(r, t, train=_write_csv(t / "c.csv", [("x", "a")],
                                                                           ("text", "y"))), "no column 'label'"),
    ("single-class", lambda r, t, m: _classify(r, t, train=_write_csv(t / "c.csv", [("good film", "pos")] * 20)),
     "two classes"),
    ("bad-jsonl", lambda r, t, m: ["predict", str(r.cls), "--file",
                                   str(_bad_file(t, "x.jsonl", b'{"text": "ok"}\n{"text": \n'))], "not valid JSON"),
    ("unknown-label-evaluate", lambda r, t, m: ["evaluate", str(r.cls), "--data",
                                                str(_write_csv(t / "e.csv", [("good", "pos"), ("meh", "neutral")]))],
     "does not know"),
    # overrides and flags
    ("nan-override", lambda r, t, m: _classify(r, t, "--set", "lr=nan"), "finite"),
    ("inf-override", lambda r, t, m: _classify(r, t, "--set", "dropout_scale=inf"), "finite"),
    ("unknown-field", lambda r, t, m: _classify(r, t, "--set", "dropout_imput=0.1"), "did you mean"),
    ("dropout-above-one", lambda r, t, m: _classify(r, t, "--set", "dropout_input=2.5"), "outside [0, 1)"),   # x 0.5 = 1.25
    ("negative-dropout", lambda r, t, m: _classify(r, t, "--set", "dropout_hidden=-0.2"), "outside [0, 1)"),
    ("override-not-a-number", lambda r, t, m: _classify(r, t, "--set", "batch_size=many"), "expected a int"),
    ("override-without-equals", lambda r, t, m: _classify(r, t, "--set", "lr"), "field=value"),
    ("ambiguous-field", lambda r, t, m: _pretrain(r, t, "--set", "vocab_size=10"), "ambiguous"),
    ("bad-choice", lambda r, t, m: _classify(r, t, "--set", "schedule=zigzag"), "choose one of"),
    ("zero-batch-size", lambda r, t, m: _classify(r, t, "--set", "batch_size=0"), "must be > 0"),
    ("negative-epochs", lambda r, t, m: _classify(r, t, "--epochs", "-1"), ">= 0"),
    ("negative-max-steps", lambda r, t, m: _pretrain(r, t, "--max-steps", "-5"), ">= 0"),
    ("unknown-preset", lambda r, t, m: _classify(r, t, "--preset", "huge"), "invalid choice"),
    ("fp16-on-cpu", lambda r, t, m: _without_cuda(m, _classify(r, t, "--precision", "fp16")), "CUDA"),
    ("dataset-and-train", lambda r, t, m: _classify(r, t, "--dataset", "clickbait"), "not both"),
    ("unknown-dataset", lambda r, t, m: ["pretrain", "--dataset", "wikitext4", "--out", str(t / "o"), *TRAIN],
     "unknown dataset"),
    ("lm-dataset-for-classify", lambda r, t, m: ["classify", "--pretrained", str(r.pre), "--dataset", "wikitext2",
                                                 "--out", str(t / "o"), *TRAIN], "not a labelled dataset"),
    ("evaluate-without-data", lambda r, t, m: ["evaluate", str(r.cls)], "exactly one"),
    ("zero-eval-batch-size", lambda r, t, m: ["evaluate", str(r.cls), "--data", str(r.labelled), "--batch-size", "0"],
     "positive integer"),
    ("unknown-command", lambda r, t, m: ["pretrian"], "invalid choice"),
    # model dirs and checkpoints
    ("missing-model-dir", lambda r, t, m: ["evaluate", str(t / "nowhere"), "--data", str(r.labelled)],
     "does not exist"),
    ("predict-no-model-dir", lambda r, t, m: ["predict", str(t / "nowhere"), "some text"], "no model dir"),
    ("model-dir-without-weights", lambda r, t, m: _model_dir_without(r, t, ckpt.WEIGHTS_FILE), "missing model.pt"),
    ("model-dir-without-tokenizer", lambda r, t, m: _model_dir_without(r, t, ckpt.TOKENIZER_FILE),
     "missing tokenizer.model"),
    ("corrupt-config", lambda r, t, m: ["predict", str(_bad_file(_copy_run(r.cls, t / "c"), ckpt.CONFIG_FILE,
                                                                 b"{not json").parent), "x"], "not valid JSON"),
    ("mismatched-tokenizer", lambda r, t, m: _foreign_tokenizer(r, t, keep_fingerprint=True), "does not match"),
    ("mismatched-vocabulary", lambda r, t, m: _foreign_tokenizer(r, t, keep_fingerprint=False), "tokens but"),
    ("truncated-checkpoint", lambda r, t, m: _truncated(r, t), "truncated or corrupt"),
    ("pickled-code-weights", lambda r, t, m: _pickled_code(r, t, ckpt.WEIGHTS_FILE), "refused"),
    ("pickled-code-resume", lambda r, t, m: _pickled_code(r, t, ckpt.RESUME_FILE), "refused"),
    ("wrong-stage-input", lambda r, t, m: ["classify", "--pretrained", str(r.cls), "--train", str(r.labelled),
                                           "--out", str(t / "o"), *TRAIN], "expected pretrain or finetune"),
    ("from-classifier-given-an-lm", lambda r, t, m: ["classify", "--from-classifier", str(r.pre), "--train",
                                                    str(r.labelled), "--out", str(t / "o"), *TRAIN],
     "expected classify"),
    ("generate-from-classifier", lambda r, t, m: ["generate", str(r.cls), "The"], "expected pretrain or finetune"),
    # out dirs
    ("out-holds-another-run", lambda r, t, m: _classify(r, t, out="cls", train=None)
     if _copy_run(r.cls, t / "cls") else None, "already holds a run"),
    ("out-is-the-input", lambda r, t, m: ["finetune", "--pretrained", str(r.pre), "--train", *r.txts,
                                          "--out", str(r.pre), *TRAIN], "input run dir"),
    ("out-is-a-file", lambda r, t, m: _classify(r, t, out=_bad_file(t, "f", b"x").name), "not a directory"),
    ("full-disk-training", _full_disk, "no space left"),
    ("full-disk-predictions", _full_disk_predictions, "No space"),
    # texts
    ("predict-empty-text", lambda r, t, m: ["predict", str(r.cls), ""], "empty"),
    ("predict-no-texts", lambda r, t, m: ["predict", str(r.cls)], "no texts"),
    ("empty-text-in-training-data", lambda r, t, m: _classify(r, t, train=_write_csv(
        t / "c.csv", [("good film", "pos"), ("  ", "neg")] * 10)), "empty"),
]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("build, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, monkeypatch, capsys, build, expect):
    """The malformed input is reported in one stderr line with exit code 2, and no existing file changes."""
    argv = build(runs, tmp_path, monkeypatch)
    before = _snapshot(runs.pre, runs.cls, tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    monkeypatch.undo()
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("ulmfit: error:"), err
    assert expect.lower() in lines[0].lower()
    after = _snapshot(runs.pre, runs.cls, tmp_path)
    assert {p: after.get(p) for p in before} == before
    assert not (tmp_path / "pwned").exists()


class TestOneClassEvaluationData:
    """Two classes are needed to *train* a classifier; a test or validation file of one class is legitimate."""

    def test_evaluate_a_one_class_file(self, runs, tmp_path, capsys):
        """evaluate --data on a file whose labels are all "pos" scores it (exit 0, every row counted)."""
        data = _write_csv(tmp_path / "pos.csv", [(t, "pos") for t in _texts(random.Random(1), 7, WORDS)])
        assert main(["evaluate", str(runs.cls), "--data", str(data)]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 7

    def test_classify_with_one_class_valid_and_test_files(self, runs, tmp_path, capsys):
        """classify trains on two classes and validates and tests on files of one class each."""
        rng = random.Random(2)
        valid = _write_csv(tmp_path / "valid.csv", [(t, "neg") for t in _texts(rng, 5, WORDS)])
        test = _write_csv(tmp_path / "test.csv", [(t, "pos") for t in _texts(rng, 6, WORDS)])
        assert main(_classify(runs, tmp_path, "--valid", str(valid), "--test", str(test), "--max-steps", "1")) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (result["n_valid"], result["n_test"]) == (5, 6)


class TestSubprocess:
    @pytest.mark.parametrize("args", [["--set", "lr=inf"], ["--set", "no_such_field=1"]],
                             ids=["inf-lr", "unknown-field"])
    def test_real_process_exits_2_with_one_line(self, runs, tmp_path, args):
        """Through the real entry point (python -m ulmfit), a bad input still gives exit 2, one line, no traceback."""
        proc = subprocess.run([sys.executable, "-m", "ulmfit", "classify", "--pretrained", str(runs.pre), "--train",
                               str(runs.labelled), "--out", str(tmp_path / "o"), *TRAIN, *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("ulmfit: error:")
        assert "Traceback" not in proc.stderr
