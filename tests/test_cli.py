"""The command line itself (issue 16 §5, §7): bare `ulmfit`, --version, parser errors, the defaults and examples in
every --help, flags only where they mean something, predict's outputs, and imports that flow one way.

Nothing here trains: predict runs on a stand-in for `inference.ensemble_proba`.
"""
import argparse
import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ulmfit import __version__
from ulmfit.cli import build_parser, main
from ulmfit.config import PRESET_NAMES, preset
from ulmfit.data.registry import DATASETS

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("data", "tokenizer", "lm", "pretrain", "finetune", "classify", "evaluate", "predict", "generate")


def _subcommands(parser, prefix=()):
    """(("classify",), parser), (("data", "list"), parser), ...: every subcommand's parser, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subcommands(sub, (*prefix, name))


def _option(path: tuple, flag: str) -> argparse.Action:
    parser = dict(_subcommands(build_parser()))[path]
    return next(a for a in parser._actions if flag in a.option_strings)


def _help(capsys, *argv) -> str:
    """The --help text of a (sub)command, with its whitespace flattened (the wrapping depends on the terminal)."""
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


class TestBareCommandAndErrors:
    def test_bare_ulmfit_lists_the_commands(self, capsys):
        """`ulmfit` alone prints the usage and every command on stderr, then one error line that says "ulmfit:"
        once; exit 2."""
        assert main([]) == 2
        out, err = capsys.readouterr()
        assert out == "" and "usage: ulmfit" in err
        assert all(f"    {name} " in err for name in COMMANDS)
        assert _lines(err)[-1].startswith("ulmfit: error: no command given: choose one of data, tokenizer")
        assert err.count("ulmfit:") == 1

    def test_bare_data_lists_its_actions(self, capsys):
        """`ulmfit data` prints the data command's help and names its missing action."""
        assert main(["data"]) == 2
        err = capsys.readouterr().err
        assert "usage: ulmfit data" in err and "download" in err
        assert _lines(err)[-1] == "ulmfit: error: data: no action given: choose one of list, download"

    @pytest.mark.parametrize("argv, where", [
        (["pretrian"], "ulmfit"),
        (["classify", "--preset", "huge"], "ulmfit classify"),
        (["generate", "d", "p", "--n-words", "many"], "ulmfit generate"),
        (["data", "download"], "ulmfit data download"),
    ], ids=["unknown-command", "bad-choice", "bad-int", "missing-positional"])
    def test_parser_errors_are_one_line_prefixed_once(self, capsys, argv, where):
        """A parsing error is one line, "ulmfit: error:" once (not "ulmfit: error: ulmfit ...:"), pointing at the
        --help of the command it came from."""
        assert main(argv) == 2
        lines = _lines(capsys.readouterr().err)
        assert len(lines) == 1 and lines[0].startswith("ulmfit: error:")
        assert lines[0].count("ulmfit:") == 1 and not lines[0].startswith("ulmfit: error: ulmfit")
        assert lines[0].endswith(f"(see `{where} --help`)")


class TestVersion:
    def test_version_flag(self, capsys):
        """`ulmfit --version` prints `ulmfit X.Y.Z` from ulmfit.__version__ and exits 0."""
        with pytest.raises(SystemExit) as e:
            main(["--version"])
        assert e.value.code == 0 and capsys.readouterr().out == f"ulmfit {__version__}\n"

    def test_help_imports_no_torch(self):
        """Parsing and --help import neither torch nor any module that does (`ulmfit --help` stays fast)."""
        code = ("import sys; from ulmfit.cli import build_parser; build_parser().format_help(); "
                "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ulmfit'))")
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


class TestHelp:
    @pytest.mark.parametrize("stage", ["pretrain", "finetune", "classify"])
    def test_preset_defaults_are_stated(self, capsys, stage):
        """Flags whose default comes from the preset say so, with each preset's value; none says "None"."""
        text = _help(capsys, stage)
        per_preset = lambda section, field: ", ".join(  # noqa: E731
            f"{n} {getattr(getattr(preset(n, stage), section), field)}" for n in PRESET_NAMES)
        assert f"--epochs N training epochs (default: from the preset: {per_preset('train', 'epochs')})" in text
        assert f"(default: from the preset: {per_preset('run', 'precision')})" in text
        assert "--seed N seed of every random draw (default: 0 in every preset)" in text
        assert "(default: None)" not in text and "(default: False)" not in text

    def test_strategy_default(self, capsys):
        """classify's --strategy names the preset's default."""
        assert "(default: gradual in every preset)" in _help(capsys, "classify")

    @pytest.mark.parametrize("argv, shown", [
        (["generate"], ["--n-words N words to add (default: 50)", "(default: 0.8)", "(default: 40)",
                        "--seed N sampling seed (default: 0)"]),
        (["evaluate"], ["the split of --dataset (default: test)", "texts per forward pass (default: 64)",
                        "joined with a newline (default: text)"]),
        (["classify"], ["tiny (smoke) (default: small)", "label column of a CSV/TSV/JSONL file (default: label)"]),
    ], ids=["generate", "evaluate", "classify"])
    def test_fixed_defaults_are_shown(self, capsys, argv, shown):
        """An option with a fixed default shows it in --help."""
        text = _help(capsys, *argv)
        assert all(s in text for s in shown), [s for s in shown if s not in text]

    def test_every_argument_has_help(self):
        """Every argument of every command has a help string (evaluate's and generate's had none)."""
        missing = [(" ".join(path), a.dest) for path, parser in _subcommands(build_parser())
                   for a in parser._actions if not a.help and not isinstance(a, argparse._SubParsersAction)]
        assert missing == []

    @pytest.mark.parametrize("path, kinds", [(("pretrain",), ("lm", "labelled")), (("finetune",), ("lm", "labelled")),
                                             (("tokenizer", "train"), ("lm", "labelled")),
                                             (("classify",), ("labelled",)), (("evaluate",), ("labelled",))])
    def test_dataset_help_lists_the_registry(self, path, kinds):
        """--dataset lists the registry's names that the command can use (classify and evaluate: labelled ones)."""
        text = _option(path, "--dataset").help
        for name, spec in DATASETS.items():
            assert (f"{name}," in text or f"{name} (" in text) == (spec.kind in kinds), name

    def test_every_command_ends_with_examples_that_parse(self):
        """Each command's --help ends with example command lines, each of which the parser accepts."""
        parser = build_parser()
        for path, sub in [((), parser), *_subcommands(parser)]:
            assert sub.epilog and sub.epilog.startswith("examples:\n"), path
            examples = [line for line in sub.epilog.splitlines()[1:] if line.startswith("  ")]
            assert 1 <= len(examples) <= 5, path
            for line in examples:
                argv = shlex.split(line, comments=True)
                argv = argv[next(i for i, w in enumerate(argv) if w == "ulmfit") + 1:]   # after VAR=value
                assert argv[:len(path)] == list(path), line
                build_parser().parse_args(argv)

    def test_examples_keep_their_line_breaks(self, capsys):
        """The help prints each example on a line of its own."""
        with pytest.raises(SystemExit):
            main(["classify", "--help"])
        lines = capsys.readouterr().out.splitlines()
        assert "  ulmfit classify --finetuned runs/ft --dataset clickbait --out runs/cls" in lines


class TestLabelCol:
    @pytest.mark.parametrize("argv", [
        ["pretrain", "--train", "nowhere.txt", "--out", "o"],
        ["finetune", "--pretrained", "nowhere", "--train", "nowhere.txt", "--out", "o"],
        ["tokenizer", "train", "--train", "nowhere.txt", "--out", "o"],
    ], ids=["pretrain", "finetune", "tokenizer-train"])
    def test_lm_stages_refuse_it(self, capsys, tmp_path, monkeypatch, argv):
        """The LM stages read no labels, so --label-col is an unknown argument there."""
        monkeypatch.chdir(tmp_path)
        assert main([*argv, "--label-col", "y"]) == 2
        assert "unrecognized arguments: --label-col y" in capsys.readouterr().err

    @pytest.mark.parametrize("argv", [["classify", "--pretrained", "p", "--train", "t.csv", "--out", "o"],
                                      ["evaluate", "cls", "--data", "t.csv"]], ids=["classify", "evaluate"])
    def test_labelled_commands_take_it(self, argv):
        """classify and evaluate still read --label-col."""
        assert build_parser().parse_args([*argv, "--label-col", "y"]).label_col == "y"


# ---- predict, on a stand-in model: texts with "good" are pos (0.9), others neg (0.8) -------------------------
@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    from ulmfit import predict as inference

    def proba(dirs, texts, batch_size=64, rt=None, baseline=True, int8=False, max_tokens=None):
        return np.array([[0.1, 0.9] if "good" in t else [0.8, 0.2] for t in texts]), ["neg", "pos"]
    monkeypatch.setattr(inference, "ensemble_proba", proba)
    (tmp_path / "cls").mkdir()
    return tmp_path / "cls"


def _csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _read_csv(path: Path, delimiter=","):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        return reader.fieldnames, list(reader)


class TestPredict:
    def test_file_prints_one_line_per_text_and_a_small_json(self, model_dir, tmp_path, capsys):
        """predict --file without --out prints a line per text (a multi-line text too), then {"n", "labels"}."""
        rows = [(f"a good film\nno {i}", "x") for i in range(3)] + [(f"a dull film {i}", "x") for i in range(5)]
        assert main(["predict", str(model_dir), "--file", str(_csv(tmp_path / "in.csv", ("text", "y"), rows))]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 9 and lines[0] == "pos\t0.9000\ta good film no 0" and lines[3].startswith("neg\t0.8000")
        assert json.loads(lines[-1]) == {"n": 8, "labels": {"neg": 5, "pos": 3}}

    def test_texts_keep_their_probabilities(self, model_dir, capsys):
        """Texts given as arguments still get every probability in the JSON line."""
        assert main(["predict", str(model_dir), "good", "bad"]) == 0
        result = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert result["predictions"][1] == {"label": "neg", "probabilities": {"neg": 0.8, "pos": 0.2}}

    def test_predictions_file_keeps_every_input_column(self, model_dir, tmp_path, capsys):
        """--out keeps the input's columns and order, then prediction, probability and p_<label>."""
        src = _csv(tmp_path / "in.csv", ("id", "text", "label", "source"),
                   [(1, "a good film", "pos", "web"), (2, "a dull film", "pos", "mail")])
        assert main(["predict", str(model_dir), "--file", str(src), "--out", str(tmp_path / "out.csv")]) == 0
        header, rows = _read_csv(tmp_path / "out.csv")
        assert header == ["id", "text", "label", "source", "prediction", "probability", "p_neg", "p_pos"]
        assert rows[1] == {"id": "2", "text": "a dull film", "label": "pos", "source": "mail", "prediction": "neg",
                           "probability": "0.8", "p_neg": "0.8", "p_pos": "0.2"}
        assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"out": str(tmp_path / "out.csv"), "n": 2,
                                                                         "labels": {"neg": 1, "pos": 1}}

    def test_out_suffix_picks_tsv_or_jsonl(self, model_dir, tmp_path):
        """--out x.tsv writes TSV and --out x.jsonl JSON lines (a JSONL input's values kept as they were)."""
        src = tmp_path / "in.jsonl"
        src.write_text(json.dumps({"text": "good", "meta": {"k": 1}}) + "\n")
        assert main(["predict", str(model_dir), "--file", str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
        assert json.loads((tmp_path / "o.jsonl").read_text()) == {
            "text": "good", "meta": {"k": 1}, "prediction": "pos", "probability": 0.9, "p_neg": 0.1, "p_pos": 0.9}
        assert main(["predict", str(model_dir), "--file", str(src), "--out", str(tmp_path / "o.tsv")]) == 0
        assert _read_csv(tmp_path / "o.tsv", "\t")[1][0]["meta"] == '{"k": 1}'

    @pytest.mark.parametrize("taken", ["prediction", "p_pos"])
    def test_a_taken_column_is_refused(self, model_dir, tmp_path, capsys, taken):
        """An input column named like one predict adds is a one-line error, and nothing is written."""
        src = _csv(tmp_path / "in.csv", ("text", taken), [("good", "x")])
        assert main(["predict", str(model_dir), "--file", str(src), "--out", str(tmp_path / "out.csv")]) == 2
        err = capsys.readouterr().err
        assert f"already has a column {taken!r}" in err and len(_lines(err)) == 1
        assert not (tmp_path / "out.csv").exists()

    @pytest.mark.parametrize("command", ["predict", "evaluate"])
    def test_int8_and_max_tokens_reach_the_models(self, tmp_path, monkeypatch, command):
        """--int8 and --max-tokens are handed to ensemble_proba; without them, fp32 and the API's default budget."""
        from ulmfit import predict as inference
        from ulmfit.config import DEFAULT_MAX_TOKENS
        seen = []

        def proba(dirs, texts, batch_size=64, rt=None, baseline=True, int8=False, max_tokens=None):
            seen.append((int8, max_tokens))
            return np.array([[0.2, 0.8]] * len(texts)), ["neg", "pos"]
        monkeypatch.setattr(inference, "ensemble_proba", proba)
        (tmp_path / "cls").mkdir()
        data = _csv(tmp_path / "test.csv", ("text", "label"), [("good", "pos")])
        argv = [command, str(tmp_path / "cls"), *(["good"] if command == "predict" else ["--data", str(data)])]
        assert main(argv) == 0 and main([*argv, "--int8", "--max-tokens", "500"]) == 0
        assert seen == [(False, DEFAULT_MAX_TOKENS), (True, 500)]

    def test_text_file_input(self, model_dir, tmp_path):
        """A .txt file is one text per line, written back in the column text."""
        (tmp_path / "in.txt").write_text("good one\nbad one\n")
        assert main(["predict", str(model_dir), "--file", str(tmp_path / "in.txt"), "--out",
                     str(tmp_path / "out.csv")]) == 0
        header, rows = _read_csv(tmp_path / "out.csv")
        assert header[:3] == ["text", "prediction", "probability"] and [r["text"] for r in rows] == ["good one",
                                                                                                     "bad one"]

    def test_tab_separated_csv_warns_in_one_line(self, tmp_path):
        """Through the real entry point, a TSV named .csv gives one "ulmfit: warning:" line saying to rename it,
        and its columns are the real ones (the error here lists "text, label", not "text<TAB>label")."""
        (tmp_path / "cls").mkdir()
        (tmp_path / "in.csv").write_text("text\tlabel\ngood\tpos\n")
        proc = subprocess.run([sys.executable, "-m", "ulmfit", "predict", str(tmp_path / "cls"), "--file",
                               str(tmp_path / "in.csv"), "--text-col", "body"], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        lines = _lines(proc.stderr)
        assert proc.returncode == 2 and len(lines) == 2, proc.stderr
        assert lines[0].startswith("ulmfit: warning:") and "looks tab-separated" in lines[0]
        assert lines[0].endswith("rename it .tsv")
        assert lines[1].startswith("ulmfit: error:") and lines[1].endswith("available columns: text, label")


class TestImports:
    def test_cli_is_not_imported_back(self):
        """cli reaches commands, and no module outside the cli package imports any part of it (at module level or
        inside a function) but `python -m ulmfit`'s __main__: the cli <-> commands cycle is gone."""
        from test_imports import import_graph
        graph = import_graph(ROOT / "ulmfit")
        assert "ulmfit.commands" in graph["ulmfit.cli"]
        back = {m: sorted(t for t in targets if t.startswith("ulmfit.cli")) for m, targets in graph.items()
                if not m.startswith("ulmfit.cli") and m != "ulmfit.__main__"}      # `python -m ulmfit`
        assert not {m: t for m, t in back.items() if t}
