"""Bad input, second round (issue 30): text that is not valid Unicode, output paths onto inputs or run dirs,
tampered run dirs, config values torch cannot use, resume checkpoints that do not fit, duplicated CSV headers,
long texts. Each case: one stderr line `ulmfit: error: ...`, exit code 2, and every existing file unchanged.

The tiny runs are test_cli_errors' (trained once per session there; once more here, a few seconds).
"""
import json
import subprocess
import sys

import pytest
import torch

from test_cli_errors import _copy_run, _snapshot, _write_csv, runs  # noqa: F401  (the tiny run dirs)
from ulmfit import checkpoint as ckpt
from ulmfit.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def one_line_error(argv, capsys, *watched) -> str:
    """Run the CLI in-process: exit 2, exactly one stderr line starting "ulmfit: error:", `watched` dirs
    unchanged. Returns the line."""
    before = _snapshot(*watched)
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("ulmfit: error:"), err
    assert _snapshot(*watched) == before
    return lines[0]


# ---- class 1: text that is not valid Unicode -------------------------------------------------------------
BAD_ARG = "caf\udcff film"              # what Python makes of the argv bytes b"caf\xff film"


class TestInvalidUnicode:
    @pytest.mark.parametrize("argv", [
        lambda r: ["predict", r.cls, BAD_ARG],
        lambda r: ["explain", r.cls, BAD_ARG],
        lambda r: ["tokenizer", "encode", r.pre, BAD_ARG],
        lambda r: ["generate", r.pre, BAD_ARG, "--n-words", "2"],
    ], ids=["predict", "explain", "tokenizer-encode", "generate"])
    def test_invalid_utf8_argument_is_named(self, runs, capsys, argv):
        line = one_line_error(argv(runs), capsys, runs.cls, runs.pre)
        assert "not valid UTF-8" in line and "byte 0xff" in line

    def test_invalid_utf8_in_a_real_argv(self, runs):
        """The bytes themselves, through the real entry point: exit 2, one line, no traceback."""
        proc = subprocess.run([sys.executable, "-m", "ulmfit", "predict", str(runs.cls), b"caf\xff"],
                              capture_output=True, timeout=120)
        err = proc.stderr.decode("utf-8", "replace")
        assert proc.returncode == 2, err
        assert len(err.strip().splitlines()) == 1 and "not valid UTF-8" in err

    @pytest.mark.parametrize("command", ["predict", "evaluate"])
    def test_lone_surrogate_in_a_jsonl_file_names_the_line(self, runs, tmp_path, capsys, command):
        data = tmp_path / "in.jsonl"
        data.write_text('{"text": "a good film", "label": "pos"}\n{"text": "bad \\ud800 film", "label": "neg"}\n')
        flag = "--file" if command == "predict" else "--data"
        line = one_line_error([command, runs.cls, flag, data], capsys, tmp_path)
        assert "line 2" in line and "U+D800" in line

    def test_lone_surrogate_in_another_jsonl_column_is_refused(self, runs, tmp_path, capsys):
        """--out writes every column back as UTF-8: a surrogate anywhere in a row could not be written."""
        data = tmp_path / "in.jsonl"
        data.write_text('{"text": "a good film", "note": {"k": "\\udfff"}}\n')
        line = one_line_error(["predict", runs.cls, "--file", data, "--out", tmp_path / "p.csv"], capsys, tmp_path)
        assert "'note'" in line and "U+DFFF" in line
        assert not (tmp_path / "p.csv").exists()


# ---- class 3: output paths -------------------------------------------------------------------------------
class TestOutputPaths:
    def test_predict_out_is_the_input_file(self, runs, tmp_path, capsys):
        data = _write_csv(tmp_path / "in.csv", [("a good film", "pos")])
        line = one_line_error(["predict", runs.cls, "--file", data, "--out", data], capsys, tmp_path)
        assert "is the input file" in line

    def test_predict_out_is_a_file_of_a_run_dir(self, runs, tmp_path, capsys):
        run = _copy_run(runs.cls, tmp_path / "cls")
        data = _write_csv(tmp_path / "in.csv", [("a good film", "pos")])
        line = one_line_error(["predict", run, "--file", data, "--out", run / ckpt.WEIGHTS_FILE], capsys, tmp_path)
        assert "inside the run dir" in line

    def test_predict_out_under_a_regular_file(self, runs, tmp_path, capsys):
        data = _write_csv(tmp_path / "in.csv", [("a good film", "pos")])
        line = one_line_error(["predict", runs.cls, "--file", data, "--out", data / "p.csv"], capsys, tmp_path)
        assert "is a file, not a folder" in line

    def test_export_out_under_a_regular_file(self, runs, tmp_path, capsys):
        (tmp_path / "f").write_text("x")
        line = one_line_error(["export", runs.cls, "--out", tmp_path / "f" / "exp"], capsys, tmp_path, runs.cls)
        assert "is a file, not a folder" in line

    def test_tokenizer_train_into_a_run_dir(self, runs, tmp_path, capsys):
        run = _copy_run(runs.pre, tmp_path / "pre")
        line = one_line_error(["tokenizer", "train", "--train", *runs.txts, "--out", run, "--preset", "tiny",
                               "--set", "tokenizer.vocab_size=60"], capsys, tmp_path)
        assert "holds a run" in line

    def test_a_write_under_a_regular_file_is_one_line(self, tmp_path):
        """The last line of defence, for every writer: atomic_write_bytes cannot create the folder."""
        from ulmfit.errors import UlmfitError
        from ulmfit.files import atomic_write_bytes
        (tmp_path / "f").write_text("x")
        with pytest.raises(UlmfitError, match="could not write"):
            atomic_write_bytes(tmp_path / "f" / "sub" / "x.json", b"{}")


# ---- class 5: tampered run dirs ----------------------------------------------------------------------------
def _tamper_config(run, change):
    meta = json.loads((run / ckpt.CONFIG_FILE).read_text())
    (run / ckpt.CONFIG_FILE).write_text(json.dumps(change(meta)))


class TestTamperedRunDirs:
    @pytest.mark.parametrize("change, said", [
        (lambda m: [m], "holds a JSON list"),
        (lambda m: {**m, "config": "small"}, 'field "config" must be an object'),
        (lambda m: {**m, "config": {**m["config"], "train": {**m["config"]["train"], "lr": "fast"}}},
         '"config.train.lr" must be a float'),
        (lambda m: {**m, "config": {**m["config"], "model": {**m["config"]["model"], "n_layers": 2.5}}},
         '"config.model.n_layers" must be a int'),
        (lambda m: {**m, "config": {**m["config"], "model": {**m["config"]["model"], "emb_size": 0}}},
         "model.emb_size must be > 0"),
        (lambda m: {**m, "labels": "pos,neg"}, '"labels" must be a list of strings'),
        (lambda m: {**m, "config": {**m["config"], "model": {**m["config"]["model"], "pad_id": 10**7}}},
         "model.pad_id must be in [0, model.vocab_size)"),
    ], ids=["not-an-object", "preset-name", "string-lr", "float-layers", "zero-size", "labels-a-string",
                                    "pad-id-beyond-the-vocabulary"])
    def test_config_json_is_named_with_its_field(self, runs, tmp_path, capsys, change, said):
        run = _copy_run(runs.cls, tmp_path / "cls")
        _tamper_config(run, change)
        line = one_line_error(["predict", run, "a good film"], capsys, tmp_path)
        assert "config.json" in line and said in line

    @pytest.mark.parametrize("field", ["hidden_size", "emb_size"])
    def test_a_size_the_weights_do_not_have_allocates_nothing(self, runs, tmp_path, capsys, field):
        """A 10^5-wide model would take ~100 GB: the sizes are checked on the meta device before anything is built."""
        run = _copy_run(runs.cls, tmp_path / "cls")
        _tamper_config(run, lambda m: {**m, "config": {**m["config"],
                                                       "model": {**m["config"]["model"], field: 100_000}}})
        line = one_line_error(["predict", run, "a good film"], capsys, tmp_path)
        assert "do not fit the model in its config" in line and "the config makes" in line

    @pytest.mark.parametrize("size", [759_250_125, 2**63])
    def test_a_size_past_what_torch_can_index(self, runs, tmp_path, capsys, size):
        run = _copy_run(runs.cls, tmp_path / "cls")
        _tamper_config(run, lambda m: {**m, "config": {**m["config"],
                                                       "model": {**m["config"]["model"], "emb_size": size}}})
        line = one_line_error(["predict", run, "a good film"], capsys, tmp_path)
        assert "cannot be built" in line, line

    def test_baseline_json_missing_a_field(self, runs, tmp_path, capsys):
        run = _copy_run(runs.cls, tmp_path / "cls")
        _tamper_config(run, lambda m: {**m, "baseline_ensemble": True})
        meta = json.loads((run / "baseline" / "baseline.json").read_text())
        del meta["C"]
        (run / "baseline" / "baseline.json").write_text(json.dumps(meta))
        line = one_line_error(["predict", run, "a good film"], capsys, tmp_path)
        assert "baseline.json" in line and '"C"' in line

    @pytest.mark.parametrize("command", ["predict", "generate"])
    def test_nan_weights_are_refused(self, runs, tmp_path, capsys, command):
        run = _copy_run(runs.cls if command == "predict" else runs.pre, tmp_path / "run")
        state = torch.load(run / ckpt.WEIGHTS_FILE, weights_only=True)
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key] = torch.full_like(state[key], float("nan"))
        torch.save(state, run / ckpt.WEIGHTS_FILE)
        line = one_line_error([command, run, "a good film"], capsys, tmp_path)
        assert "model.pt" in line and key in line and "NaN" in line


# ---- class 2: config values torch or the code cannot use ----------------------------------------------------
from test_cli_errors import _classify  # noqa: E402


class TestConfigValues:
    @pytest.mark.parametrize("setting, said", [
        ("weight_decay=-0.1", "train.weight_decay"), ("adam_beta1=1", "train.adam_beta1"),
        ("adam_beta2=-0.5", "train.adam_beta2"), ("lr_decay_per_layer=0", "train.lr_decay_per_layer"),
        ("max_len=0", "head.max_len"), ("head_hidden=0", "head.head_hidden"), ("seed=-1", "run.seed"),
        (f"seed={2**64}", "run.seed"), ("threads=-3", "run.threads"), ("clip=-1", "train.clip"),
        ("ar_alpha=-1", "train.ar_alpha"), ("pad_id=-1", "model.pad_id"), ("character_coverage=0", "coverage"),
        ("max_sentences=0", "tokenizer.max_sentences"), ("min_freq=-2", "tokenizer.min_freq"),
    ])
    def test_the_field_is_named(self, runs, tmp_path, capsys, setting, said):
        line = one_line_error(_classify(runs, tmp_path, "--set", setting), capsys, tmp_path, runs.pre)
        assert said in line

    @pytest.mark.parametrize("setting", ["tokenizer.vocab_size=\n", "lr=1e-3\r\nx", "seed=\u2028", "no_such\nfield=1"])
    def test_a_line_break_in_the_value_stays_on_the_line(self, runs, tmp_path, capsys, setting):
        """The value is echoed in the message, escaped: one line still (found by the 2,000-example property pass)."""
        line = one_line_error(_classify(runs, tmp_path, "--set", setting), capsys, tmp_path, runs.pre)
        assert "\\" in line

    def test_a_huge_seed_flag(self, runs, tmp_path, capsys):
        line = one_line_error(_classify(runs, tmp_path, "--seed", str(10**30)), capsys, tmp_path, runs.pre)
        assert "run.seed" in line

    def test_valid_frac_that_leaves_nothing_to_train_on(self, runs, tmp_path, capsys):
        line = one_line_error(_classify(runs, tmp_path, "--set", "valid_frac=0.9999"), capsys, tmp_path, runs.pre)
        assert "valid_frac" in line and "no training examples" in line

    @pytest.mark.parametrize("flags, said", [(["--temperature", "nan"], "--temperature"),
                                             (["--temperature", "inf"], "--temperature"),
                                             (["--seed", str(2**70)], "--seed"), (["--seed", "-1"], "--seed"),
                                             (["--top-k", "-1"], "--top-k")])
    def test_generate_flags(self, runs, capsys, flags, said):
        line = one_line_error(["generate", runs.pre, "The film", "--n-words", "2", *flags], capsys, runs.pre)
        assert said in line


# ---- class 4: resume ----------------------------------------------------------------------------------------
def _unfinished_pretrain(runs, tmp_path, resume_bytes: bytes):
    run = _copy_run(runs.pre, tmp_path / "run")
    for name in (ckpt.WEIGHTS_FILE, ckpt.CONFIG_FILE):     # an unfinished run: resume.pt is the latest state
        (run / name).unlink()
    (run / ckpt.RESUME_FILE).write_bytes(resume_bytes)
    return ["pretrain", "--train", *runs.txts, "--out", run, "--resume", "--tokenizer", runs.pre,
            "--preset", "tiny", "--threads", "1"]


class TestResume:
    def test_an_empty_resume_checkpoint(self, runs, tmp_path, capsys):
        line = one_line_error(_unfinished_pretrain(runs, tmp_path, b""), capsys, runs.pre)
        assert "resume.pt" in line and "empty" in line

    def test_a_truncated_resume_checkpoint(self, runs, tmp_path, capsys):
        data = (runs.pre / ckpt.WEIGHTS_FILE).read_bytes()
        line = one_line_error(_unfinished_pretrain(runs, tmp_path, data[:100]), capsys, runs.pre)
        assert "resume.pt" in line and "truncated or corrupt" in line

    @pytest.fixture
    def interrupted_classify(self, runs, tmp_path, monkeypatch):
        """A gradual-unfreezing classify run stopped after its resume checkpoints, before it saved."""
        def stop(*args, **kwargs):
            raise KeyboardInterrupt
        monkeypatch.setattr(ckpt, "save_run", stop)
        assert main([str(a) for a in _classify(runs, tmp_path, "--max-steps", "3", "--set", "save_every=1")]) == 130
        monkeypatch.undo()
        assert (tmp_path / "out" / ckpt.RESUME_FILE).is_file()
        return tmp_path

    @pytest.mark.parametrize("strategy", ["full", "frozen"])
    def test_resume_with_another_strategy(self, runs, interrupted_classify, capsys, strategy):
        tmp = interrupted_classify
        line = one_line_error(_classify(runs, tmp, "--resume", "--strategy", strategy, "--max-steps", "3",
                                        "--set", "save_every=1"), capsys, runs.pre)
        assert "resume.pt" in line and "--strategy" in line


# ---- class 7: a CSV with a duplicated header name ------------------------------------------------------------
class TestDuplicatedHeader:
    @pytest.mark.parametrize("command", ["predict", "classify"])
    def test_the_column_is_named(self, runs, tmp_path, capsys, command):
        data = tmp_path / "in.csv"
        data.write_text("text,label,text\na good film,pos,a bad film\na bad film,neg,a good film\n")
        argv = (["predict", runs.cls, "--file", data, "--out", tmp_path / "p.csv"] if command == "predict"
                else _classify(runs, tmp_path, train=data))
        line = one_line_error(argv, capsys, tmp_path, runs.pre)
        assert "'text'" in line and "twice" in line
        assert not (tmp_path / "p.csv").exists()


# ---- class 8: long texts -------------------------------------------------------------------------------------
def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


class TestLongTexts:
    def test_max_chars_cuts_and_says_so(self, runs, capsys):
        long_text = "a good film " * 50
        # under pytest the warning is recorded, not printed (the CLI prints it as one `ulmfit: warning:` line)
        with pytest.warns(UserWarning, match=r"1 of 1 text\(s\) longer than --max-chars 12 were cut"):
            assert main(["predict", str(runs.cls), long_text, "--max-chars", "12"]) == 0
        captured = capsys.readouterr()
        assert main(["predict", str(runs.cls), long_text[:12]]) == 0
        assert _last_json(captured.out) == _last_json(capsys.readouterr().out)

    @pytest.mark.parametrize("command", ["predict", "explain"])
    def test_a_long_input_shows_progress(self, runs, capsys, monkeypatch, command):
        from ulmfit import longtext
        monkeypatch.setattr(longtext, "LONG_CHARS", 100)
        argv = [command, str(runs.cls), "a good film and a bad film " * 10] + (["--steps", "2"] if command ==
                                                                                "explain" else [])
        assert main(argv) == 0
        assert "tok" in capsys.readouterr().err            # tqdm's counter, in tokens

    def test_a_short_input_shows_none(self, runs, capsys):
        assert main(["predict", str(runs.cls), "a good film"]) == 0
        assert "tok" not in capsys.readouterr().err


# ---- class 9: bf16 emulated on AVX-512 without native bf16 ----------------------------------------------------
class TestEmulatedBf16:
    @pytest.fixture
    def ice_lake(self, monkeypatch):
        """This machine's CPU has avx512_bf16: the capability check is told otherwise (AVX-512 alone)."""
        from ulmfit import runtime
        monkeypatch.setattr(runtime, "cpu_flags", lambda: ["avx2", "avx512f", "avx512_vnni"])

    @pytest.mark.bf16
    def test_bf16_training_warns_in_one_line(self, runs, tmp_path, capsys, ice_lake):
        argv = ["pretrain", "--train", *runs.txts, "--out", str(tmp_path / "o"), "--preset", "tiny", "--threads", "1",
                "--max-steps", "1", "--precision", "bf16", "--set", "tokenizer.vocab_size=70"]
        with pytest.warns(UserWarning) as record:
            assert main(argv) == 0
        said = [str(w.message) for w in record if "emulated" in str(w.message)]
        assert len(said) == 1 and said[0].startswith("--precision bf16") and "\n" not in said[0]

    @pytest.mark.parametrize("flags, emulated", [(["avx2", "avx512f"], True), (["avx512f", "avx512_bf16"], False),
                                                 (["avx512f", "amx_bf16"], False), (["avx2"], False)])
    def test_the_capability_check(self, monkeypatch, flags, emulated):
        from ulmfit import runtime
        monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
        assert runtime.bf16_is_emulated() is emulated


def test_resume_of_a_finished_run_with_a_tampered_config(runs, tmp_path, capsys):
    """--resume on a finished run reads its config.json for the results: a tampered one is one line too."""
    run = _copy_run(runs.cls, tmp_path / "out")
    (run / ckpt.CONFIG_FILE).write_text('["not", "a", "config"]')
    line = one_line_error(_classify(runs, tmp_path, "--resume"), capsys, tmp_path)
    assert "config.json" in line and "not a ulmfit run config" in line
