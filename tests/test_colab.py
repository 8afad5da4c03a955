"""Colab (issue 20): one home for the install address, the install cell run with Colab faked,
and the hint a tiny-profile chapter gives on a Colab GPU."""
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import torch

from survey_lib import colab
from survey_lib.book import Chapter

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_carries_the_install_cell_written_from_one_address(source):
    assert source.read_text().count(colab.INSTALL_CELL) == 1, "run `make sync` to write survey_lib/colab.py's install cell"


def test_the_readme_badges_point_to_the_same_repository():
    badges = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("[![")]
    assert len(badges) >= 2 and all(colab.REPOSITORY in line for line in badges)


def test_writing_the_install_cell_replaces_a_drifted_one_and_names_a_missing_one(tmp_path):
    chapter = tmp_path / "99_x.py"
    drifted = colab.INSTALL_CELL.replace(colab.REPOSITORY, "someone/fork")
    chapter.write_text(f"# %%\n{drifted}\n# %% tags=[\"parameters\"]\nseed = 0\n")
    assert colab.write_install_cell(chapter) and colab.INSTALL_CELL in chapter.read_text()
    assert not colab.write_install_cell(chapter)  # already current
    chapter.write_text("# %%\nseed = 0\n")
    with pytest.raises(ValueError, match="install cell"):
        colab.write_install_cell(chapter)


@pytest.fixture
def fake_colab(monkeypatch):
    """google.colab importable, pip recorded instead of run, and a GPU that says it is there."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: commands.append((command, kw)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py"])  # no key=value overrides
    return commands


def test_on_colab_the_first_two_cells_install_the_package_and_a_gpu_gets_the_colab_hint(fake_colab, capsys):
    notebook = nbformat.read(ROOT / "chapters" / "01_rl_basics.ipynb", as_version=4)
    install, parameters = [c for c in notebook.cells if c.cell_type == "code"][:2]
    assert "parameters" in parameters.metadata.get("tags", [])
    namespace = {}
    exec(install.source, namespace)
    exec(parameters.source, namespace)
    assert fake_colab == [([sys.executable, "-m", "pip", "install", "-q", colab.PACKAGE], {"check": True})]

    Chapter("01_rl_basics", namespace)
    assert capsys.readouterr().out.count('profile = "colab"') == 1
    Chapter("01_rl_basics", {**namespace, "profile": "small"})  # a profile chosen: no hint
    assert 'profile = "colab"' not in capsys.readouterr().out


def test_off_colab_the_install_cell_does_nothing(monkeypatch):
    commands = []
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: commands.append(command))
    exec(colab.INSTALL_CELL, {})
    assert commands == []
