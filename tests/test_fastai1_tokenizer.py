"""fastai v1's rules (rule set `fastai_v1`), against what fastai 1.0.53 itself gives, and their wiring (issue 29).

tests/fixtures/fastai1_tokens.json.gz holds 1,453 real texts (IMDb reviews with HTML, clickbait headlines,
WikiText-2 and Wikipedia lines, texts chosen for all-caps words, years, repeated characters and words) and short
cases per rule that differs from v2, each with the tokens fastai 1.0.53 gave it (benchmarks/fastai1_fixtures.py
made them, running fastai 1.0.53 unmodified with spaCy 3.8.18; its provenance is in the file).
"""
import gzip
import json
from pathlib import Path

import pytest

pytest.importorskip("spacy", reason="the fastai tokenizer kind needs spaCy (pip install 'spacy>=3,<4')")

from ulmfit import checkpoint as ckpt  # noqa: E402
from ulmfit.cli import main  # noqa: E402
from ulmfit.config import TokenizerConfig  # noqa: E402
from ulmfit.errors import UlmfitError  # noqa: E402
from ulmfit.text.fastai_tokenizer import FASTAI_SPECIALS, RULES_FILE, VOCAB_FILE, FastaiTokenizer  # noqa: E402
from ulmfit.text.tokenizer import load_tokenizer, tokenizer_files  # noqa: E402

FIXTURE = json.loads(gzip.decompress((Path(__file__).parent / "fixtures" / "fastai1_tokens.json.gz").read_bytes()))
V1 = FastaiTokenizer(list(FASTAI_SPECIALS), rules="fastai_v1")
V2 = FastaiTokenizer(list(FASTAI_SPECIALS))


def disagreements(tok, items) -> list[str]:
    got = tok.tokenize_documents([i["text"] for i in items])
    return [f"{i['text'][:60]!r}: fastai 1.0.53 {i['tokens'][:12]} vs ours {g[:12]}"
            for i, g in zip(items, got) if g != i["tokens"]]


def test_fixture_was_made_by_fastai_1_0_53():
    assert FIXTURE["made_by"].startswith("fastai 1.0.53") and FIXTURE["spacy"].startswith("3.8")


@pytest.mark.parametrize("source", sorted(FIXTURE["sources"]))
def test_v1_rules_give_fastai_1_0_53s_tokens_on_real_texts(source):
    items = FIXTURE["sources"][source]
    bad = disagreements(V1, items)
    assert not bad, f"{len(bad)} of {len(items)} differ:\n" + "\n".join(bad[:10])


def test_at_least_1000_real_texts():
    assert sum(len(v) for v in FIXTURE["sources"].values()) >= 1000


@pytest.mark.parametrize("rule", sorted(FIXTURE["cases"]))
def test_each_differing_rule(rule):
    """v1's rule gives fastai 1.0.53's tokens; v2's rules do not (so this test fails under the v2 rules)."""
    items = FIXTURE["cases"][rule]
    assert not disagreements(V1, items)
    assert disagreements(V2, items), f"v2 agrees with fastai 1.0.53 on every case of {rule!r}: not a difference"


def test_years_stay_words_and_nasa_gets_xxup():
    """The two examples of the issue, in the vocabulary's terms."""
    assert V1.tokenize("In 1999, NASA's budget") == ["xxbos", "xxmaj", "in", "1999", ",", "xxup", "nasa", "'s",
                                                      "budget"]
    assert V2.tokenize("In 1999")[3:] == ["1", "xxrep", "3", "9"]


def test_v1_rules_saved_and_loaded_with_the_vocabulary(tmp_path):
    V1.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.rules == "fastai_v1" and again.fingerprint() == V1.fingerprint() != V2.fingerprint()
    assert tokenizer_files(tmp_path) == [tmp_path / VOCAB_FILE, tmp_path / RULES_FILE]   # export copies both


def test_v2_save_writes_no_rule_record_and_removes_a_stale_one(tmp_path):
    V1.save(tmp_path)
    V2.save(tmp_path)
    assert not (tmp_path / RULES_FILE).exists() and load_tokenizer(tmp_path).rules == "fastai_v2"


def test_train_uses_the_configured_rules(tmp_path):
    """Fine-tuning builds the target vocabulary with the LM's tokenizer config: v1 stays v1 ("1999" a word)."""
    tok = FastaiTokenizer.train(["It rained in 1999."] * 3, TokenizerConfig(model_type="fastai", min_freq=1,
                                                                           fastai_rules="fastai_v1"), tmp_path)
    assert tok.rules == "fastai_v1" and "1999" in tok.vocab and load_tokenizer(tmp_path).rules == "fastai_v1"


def test_unknown_rule_set_is_one_line():
    with pytest.raises(UlmfitError, match="fastai_v1"):
        FastaiTokenizer(list(FASTAI_SPECIALS), rules="fastai_v3")


def test_corrupt_rule_record_is_one_line(tmp_path):
    V1.save(tmp_path)
    (tmp_path / RULES_FILE).write_text("{")
    with pytest.raises(UlmfitError, match=RULES_FILE):
        load_tokenizer(tmp_path)


# ---- imports choose the rules ----------------------------------------------------------------------------
from tests.test_fastai_interop import fastai_state, imported  # noqa: E402


@pytest.mark.parametrize("layout, rules", [("v1", "fastai_v1"), ("v2", "fastai_v2")])
def test_import_picks_rules_from_the_layout(tmp_path, layout, rules):
    out = imported(tmp_path, fastai_state(layout=layout))
    _, config, _, tok = ckpt.load_run(out)
    assert config.tokenizer.fastai_rules == tok.rules == rules
    assert json.loads((out / "config.json").read_text())["imported"]["rules"] == rules


def test_import_rules_can_be_chosen(tmp_path):
    _, config, _, tok = ckpt.load_run(imported(tmp_path, fastai_state(layout="v1"), rules="fastai_v2"))
    assert config.tokenizer.fastai_rules == tok.rules == "fastai_v2"


def test_wt103_download_selects_v1_rules_whatever_the_layout(tmp_path, monkeypatch):
    """The registry's wt103 models were trained with fastai 1.0.53: v1 rules even for a file without v1's copies."""
    from tests.test_fastai_interop import as_bytes, vocab_bytes
    from tests.test_model_zoo import spec
    from ulmfit.pretrained import model_zoo as Z
    folder = tmp_path / "mirror" / "wt103-fwd"
    folder.mkdir(parents=True)
    (folder / "lstm_fwd.pth").write_bytes(as_bytes(fastai_state(layout="v2")))
    (folder / "itos_wt103.pkl").write_bytes(vocab_bytes())
    monkeypatch.setenv("ULMFIT_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ULMFIT_CACHE", str(tmp_path / "cache"))
    assert all(s.rules == "fastai_v1" for s in Z.PRETRAINED.values())
    assert Z.download_pretrained(spec("http://127.0.0.1:9/never-used.tgz"), tmp_path / "lm")["rules"] == "fastai_v1"
    assert ckpt.load_run(tmp_path / "lm")[3].rules == "fastai_v1"


def test_cli_encode_shows_the_rules(tmp_path, capsys):
    out = imported(tmp_path, fastai_state(layout="v1"))
    assert main(["tokenizer", "encode", str(out), "It was 1999"]) == 0
    printed = capsys.readouterr().out
    assert "rules: fastai_v1 (fastai 1.0.53)" in printed and "xxbos xxmaj it was xxunk\n" in printed


def test_v1_rules_carry_through_finetune_and_classify(tmp_path, capsys):
    """`lm import --rules fastai_v1` -> finetune (the target's own vocabulary, made with v1's rules) -> classify:
    every run dir tokenizes as fastai 1.0.53 did."""
    import pickle
    from tests.test_fastai_interop import as_bytes
    from tests.test_fastai_pipeline import run, write_csv
    texts = ["In 1999 the match was won.", "In 2000 the soup was good."] * 20
    vocab = FastaiTokenizer.train(texts, TokenizerConfig(model_type="fastai", min_freq=1), tmp_path / "tok").vocab
    (tmp_path / "lm.pth").write_bytes(as_bytes(fastai_state("tiny", len(vocab))))
    (tmp_path / "itos.pkl").write_bytes(pickle.dumps(vocab))
    write_csv(tmp_path / "train.csv", texts, ["sport", "food"] * 20)
    lm, ft, cls = tmp_path / "lm", tmp_path / "ft", tmp_path / "cls"
    steps = ["--preset", "tiny", "--max-steps", "1"]
    assert run(capsys, "lm", "import", "--fastai", tmp_path / "lm.pth", tmp_path / "itos.pkl", "--preset", "tiny",
               "--rules", "fastai_v1", "--out", lm)["rules"] == "fastai_v1"
    run(capsys, "finetune", "--pretrained", lm, "--train", tmp_path / "train.csv", *steps, "--out", ft)
    run(capsys, "classify", "--finetuned", ft, "--train", tmp_path / "train.csv", *steps, "--out", cls)
    for run_dir in (ft, cls):
        _, config, _, tok = ckpt.load_run(run_dir)
        assert config.tokenizer.fastai_rules == tok.rules == "fastai_v1", run_dir
    assert "1999" in ckpt.load_run(ft)[3].vocab                     # v2's rules would have made it 1 xxrep 3 9
    from ulmfit.apps import exported
    from ulmfit.apps.export import export_classifier
    export_classifier(cls, tmp_path / "export", baseline=False)     # serving reads the rule record too
    assert exported.load(tmp_path / "export").tokenizer.rules == "fastai_v1"


def test_rules_selectable_with_set_when_training_from_scratch():
    from ulmfit.config import apply_overrides, preset
    config = apply_overrides(preset("tiny", "pretrain"), ["model_type=fastai", "fastai_rules=fastai_v1"])
    assert config.tokenizer.fastai_rules == "fastai_v1"
    with pytest.raises(UlmfitError, match="fastai_v2, fastai_v1"):
        apply_overrides(preset("tiny", "pretrain"), ["fastai_rules=v1"])


def test_older_run_config_without_the_field_reads_as_v2():
    from ulmfit.config import StageConfig, preset
    d = preset("tiny", "pretrain").to_dict()
    del d["tokenizer"]["fastai_rules"]                  # a config.json written before issue 29
    assert StageConfig.from_dict(d).tokenizer.fastai_rules == "fastai_v2"


def test_run_dir_that_lost_its_rule_record_is_refused(tmp_path):
    """Without fastai_rules.json the vocabulary would read as v2: the fingerprint in config.json catches that."""
    out = imported(tmp_path, fastai_state(layout="v1"))
    (out / RULES_FILE).unlink()
    with pytest.raises(UlmfitError, match="does not match"):
        ckpt.load_run(out)
