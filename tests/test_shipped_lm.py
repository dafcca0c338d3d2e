"""The LMs that ship inside ulmfit (issue 26): listed, usable by name with no network and no mirror, checked on
every use (a damaged file is one line and exit 2)."""
import shutil

import pytest

from synthetic import labelled_topics, pretrain_tiny
from ulmfit.cli import main
from ulmfit.data.download import sha256_file
from ulmfit.pretrained import model_zoo as Z
from ulmfit.predict import LanguageModel


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return pretrain_tiny(tmp_path_factory.mktemp("shipped"), seed=7)


@pytest.fixture
def shipped(tiny_run, tmp_path, monkeypatch):
    """A shipped entry `tiny-ship` whose folder is a copy of a tiny pretrain run, registered as the real ones are."""
    monkeypatch.setattr(Z, "SHIPPED_DIR", tmp_path / "shipped")
    folder = tmp_path / "shipped" / "tiny-ship"
    shutil.copytree(tiny_run, folder, ignore=shutil.ignore_patterns("data", "metrics.jsonl"))
    files = tuple((p.name, sha256_file(p), p.stat().st_size) for p in sorted(folder.iterdir()) if p.is_file())
    monkeypatch.setitem(Z.SHIPPED, "tiny-ship", Z.ShippedSpec("tiny-ship", "a test LM", files, backwards=False))
    monkeypatch.delenv("ULMFIT_MIRROR", raising=False)
    monkeypatch.setenv("ULMFIT_CACHE", str(tmp_path / "empty-cache"))
    return folder


def test_listed(shipped, capsys):
    assert main(["lm", "list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("tiny-ship"))
    assert "shipped" in line


def test_a_name_works_where_a_run_dir_does(shipped, tmp_path):
    """finetune --pretrained NAME and LanguageModel.from_pretrained(NAME), with no mirror and an empty cache."""
    texts, labels = labelled_topics(60, seed=8)
    (tmp_path / "t.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(texts, labels)))
    assert main(["finetune", "--pretrained", "tiny-ship", "--train", str(tmp_path / "t.csv"), "--preset", "tiny",
                 "--max-steps", "2", "--out", str(tmp_path / "ft")]) == 0
    assert LanguageModel.from_pretrained("tiny-ship", device="cpu").tokenizer.vocab_size > 0
    assert not (tmp_path / "empty-cache").exists()           # nothing downloaded or copied into a cache


def test_a_damaged_file_is_one_line(shipped, tmp_path, capsys):
    weights = shipped / "model.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    code = main(["finetune", "--pretrained", "tiny-ship", "--dataset", "clickbait", "--out", str(tmp_path / "ft")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "damaged" in err and "model.pt" in err


@pytest.mark.parametrize("name", sorted(Z.SHIPPED))
def test_the_real_shipped_lms_are_intact(name):
    """Every committed LM passes its checksums, fits its config, and is within the size a shipped LM may take."""
    spec = Z.SHIPPED[name]
    assert sum(size for _, _, size in spec.files) <= 30e6
    model = LanguageModel.from_pretrained(name, device="cpu")
    assert model.stage_config.train.backwards == spec.backwards
    assert (spec.folder / "PROVENANCE.md").is_file()
