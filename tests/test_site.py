"""The rendered book's project (issue 20); the browser test builds and opens it."""
from pathlib import Path

import pytest

from survey_lib import site

ROOT = Path(__file__).resolve().parents[1]


def test_the_contents_come_from_the_readme_table_with_every_written_chapter():
    rows = site.chapter_table((ROOT / "README.md").read_text())
    written = sorted(p.stem for p in (ROOT / "chapters").glob("[0-9][0-9]_*.py"))
    assert [r["number"] for r in rows] == [f"{i:02d}" for i in range(1, 11)]
    assert sorted(r["slug"] for r in rows if r["slug"]) == written
    assert all(r["section"] and r["measures"] for r in rows)


def test_the_project_serves_mathjax_itself_and_names_an_unknown_chapter(tmp_path):
    src = site.write_project(ROOT, tmp_path, ["01_rl_basics"])
    conf = (src / "conf.py").read_text()
    assert 'mathjax_path = "mathjax/MathJax.js' in conf and (src / "_static" / "mathjax" / "MathJax.js").exists()
    assert (src / "chapters" / "01_rl_basics.ipynb").exists() and (src / "sources" / "01_rl_basics.py").exists()
    index = (src / "index.md").read_text()
    assert "*(not in this build)*" in index and "*(planned)*" in index
    with pytest.raises(ValueError, match="99_nothing"):
        site.write_project(ROOT, tmp_path, ["99_nothing"])


def test_a_readme_without_the_table_is_named():
    with pytest.raises(ValueError, match="chapter table"):
        site.chapter_table("# no table here\n")
