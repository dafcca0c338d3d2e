"""The notebook machinery: sources build the committed notebooks; published outputs are kept small and stable."""
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
sys.path.insert(0, str(NOTEBOOKS_DIR))
import build_notebooks  # noqa: E402
import run_all  # noqa: E402


def _published(name="00_overview"):
    """The built notebook with the outputs and metadata an execution adds."""
    nb = build_notebooks.build(name)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 1
    code.metadata = {"execution": {"iopub.execute_input": "2026-11-26T18:00:00.000Z"}}
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="a result\n")]
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9"}
    return nb


def test_committed_notebooks_match_their_sources():
    assert build_notebooks.stale() == []


def test_a_published_notebook_is_not_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(build_notebooks, "HERE", tmp_path)
    (tmp_path / "00_overview.ipynb").write_text(nbformat.writes(_published()), encoding="utf-8")
    assert build_notebooks.stale(["00_overview"]) == []


def test_an_edited_cell_is_stale_whatever_its_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(build_notebooks, "HERE", tmp_path)
    nb = _published()
    next(c for c in nb.cells if c.cell_type == "code").source += "\nprint('edited')"
    (tmp_path / "00_overview.ipynb").write_text(nbformat.writes(nb), encoding="utf-8")
    assert build_notebooks.stale(["00_overview"]) == ["00_overview"]


def test_a_prose_rebuild_keeps_the_outputs_of_unchanged_code(tmp_path, monkeypatch):
    """--prose-only: a published cell's outputs survive a rebuild whose code differs only in comments."""
    monkeypatch.setattr(build_notebooks, "HERE", tmp_path)
    nb = _published()
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.source += "\n# a comment the source no longer has"
    (tmp_path / "00_overview.ipynb").write_text(nbformat.writes(nb), encoding="utf-8")
    rebuilt = build_notebooks.with_kept_outputs("00_overview")
    kept = next(c for c in rebuilt.cells if c.cell_type == "code")
    assert kept.outputs == code.outputs and kept.source == build_notebooks.build("00_overview").cells[
        rebuilt.cells.index(kept)].source


def test_a_prose_rebuild_refuses_changed_code(tmp_path, monkeypatch):
    """The outputs would no longer be what the code prints: re-execute instead."""
    monkeypatch.setattr(build_notebooks, "HERE", tmp_path)
    nb = _published()
    next(c for c in nb.cells if c.cell_type == "code").source += "\nprint('edited')"
    (tmp_path / "00_overview.ipynb").write_text(nbformat.writes(nb), encoding="utf-8")
    with pytest.raises(ValueError, match="code cell 1 changed"):
        build_notebooks.with_kept_outputs("00_overview")


def test_clean_outputs_drops_progress_bars_and_volatile_metadata():
    nb = _published()
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=".../tqdm/auto.py:21: TqdmWarning: IProgress not found\n"
                               "  from .autonotebook import tqdm as notebook_tqdm\n"),
        nbformat.v4.new_output("stream", name="stderr", text="\rpretrain all ep 1/3:   0%|          | 0/50 [00:00<?, ?it/s]"),
        nbformat.v4.new_output("stream", name="stderr", text="\rpretrain all ep 1/3:  40%|####      | 20/50 "
                               "[00:03<00:04, 6.10it/s, loss=5.1]\nUserWarning: a real warning\n"),
        nbformat.v4.new_output("stream", name="stderr", text="finetune all ep 1/3: 2/253 steps [00:07, budget "
                               "left=1:23, loss=5.491, ppl=242.5]\rfinetune all ep 1/3: 3/253 steps [00:11, budget"),
        nbformat.v4.new_output("stream", name="stdout", text="valid ppl 42.0\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}),
    ]
    clean = run_all.clean_outputs(nb)
    outputs = next(c for c in clean.cells if c.cell_type == "code").outputs
    assert [(o.output_type, o.get("name")) for o in outputs] == [("stream", "stderr"), ("stream", "stdout"),
                                                                 ("display_data", None)]
    assert outputs[0].text == "UserWarning: a real warning\n"
    assert outputs[1].text == "valid ppl 42.0\n"
    assert next(c for c in clean.cells if c.cell_type == "code").metadata == {}
    assert clean.metadata["language_info"] == {"name": "python"}
    nbformat.validate(clean)
    assert nbformat.writes(build_notebooks.without_outputs(clean)) == nbformat.writes(build_notebooks.build("00_overview"))


def test_publish_refuses_the_quick_mode(monkeypatch, capsys):
    monkeypatch.setenv("QUICK", "1")
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--publish", "00_overview"])
    assert run_all.main() == 2
    assert "full mode only" in capsys.readouterr().err
