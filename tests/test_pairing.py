"""Each chapter's hand-edited .py and its .ipynb must stay paired, in sync and output-free."""
from pathlib import Path

import jupytext
import pytest

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
SOURCES = sorted(CHAPTERS.glob("[0-9][0-9]_*.py"))


def cells(path):
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in jupytext.read(path).cells]


def test_there_are_chapters():
    assert SOURCES, "no chapters/NN_slug.py found"
    assert sorted(p.stem for p in CHAPTERS.glob("[0-9][0-9]_*.ipynb")) == [p.stem for p in SOURCES], "an .ipynb has no .py"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_exists_and_is_in_sync(source):
    notebook = source.with_suffix(".ipynb")
    assert notebook.exists(), f"{source.name} has no paired notebook; run `make sync`"
    assert cells(source) == cells(notebook), f"{source.name} and {notebook.name} are out of sync; run `make sync`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_has_no_outputs_or_noisy_metadata(source):
    nb = jupytext.read(source.with_suffix(".ipynb"))
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{source.stem}.ipynb has committed outputs"
        assert set(cell.metadata) <= {"tags"}, f"noisy cell metadata in {source.stem}.ipynb: {dict(cell.metadata)}"
    assert set(nb.metadata) <= {"kernelspec", "jupytext"}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_first_code_cells_install_on_colab_then_take_parameters(source):
    code = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
    assert "google.colab" in code[0].source
    assert code[1].metadata.get("tags") == ["parameters"], "the second code cell must be tagged `parameters`"
    assert "profile =" in code[1].source and "seed =" in code[1].source
