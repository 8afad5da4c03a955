"""The book as a static website, executed, that builds and displays offline (`make site`).

Used by `make site` (every chapter) and by the browser test (chapter 01 alone):

    python -m survey_lib.site [--chapters 01_rl_basics,03_reward_models] [--out build/site]

It writes a Sphinx project under `<out>/src`: a contents page built from the README's chapter
table (every chapter with its survey section, the planned ones marked), each chapter's
notebook, and each chapter's `.py` source (a download on the contents page); myst-nb executes the notebooks on the tiny profile
and sphinx-book-theme renders them to `<out>/html`. Nothing is fetched when the site is built
or read: MathJax (2.7 with its HTML-CSS output, from the `jupyter-server-mathjax` package) is served from the site
itself, since Sphinx's default loads it from a CDN at view time, and widgets render their
static form (`dashboard.STATIC_ENV`), since a page has no kernel behind it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from .colab import REPOSITORY
from .dashboard import STATIC_ENV

ROW = re.compile(r"^\| (\d\d) \| (.+?) \| (.+?) \| (.+?) \|$")
LINK = re.compile(r"\[(.+?)\]\(chapters/(\d\d_\w+)\.py\)")


def chapter_table(readme: str) -> list[dict]:
    """The README's chapter table as rows: number, title, slug (None while planned), survey
    section and what the chapter measures."""
    rows = []
    for line in readme.splitlines():
        match = ROW.match(line)
        if match:
            number, title, section, measures = match.groups()
            link = LINK.search(title)
            rows.append({"number": number, "title": link.group(1) if link else title.replace("*(planned)*", "").strip(),
                         "slug": link.group(2) if link else None, "section": section, "measures": measures})
    if not rows:
        raise ValueError("README.md has no chapter table (rows like '| 01 | [title](chapters/01_slug.py) | §2 | ... |')")
    return rows


def conf_py() -> str:
    return f'''# Written by survey_lib.site; edit that module, not this file.
project = "RL-enhanced LLMs: a Jupyter companion"
author = "the companion's authors"
extensions = ["myst_nb"]
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "force"
nb_execution_timeout = 1800
nb_execution_raise_on_error = True
nb_ipywidgets_js = {{}}  # the embed scripts come from a CDN; widgets show their static form instead
html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {{"repository_url": "https://github.com/{REPOSITORY}", "use_repository_button": True,
                      "show_toc_level": 2}}
html_static_path = ["_static"]
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {{"tex2jax": {{"inlineMath": [["\\\\(", "\\\\)"]], "displayMath": [["\\\\[", "\\\\]"]],
                               "processEscapes": True, "ignoreClass": "document", "processClass": "math|output_area"}},
                   # the package ships only the STIX-Web web fonts, not MathJax's default TeX ones
                   "HTML-CSS": {{"availableFonts": [], "webFont": "STIX-Web", "imageFont": None}}}}
exclude_patterns = ["**.ipynb_checkpoints"]
'''


def index_md(rows: list[dict], built: set[str]) -> str:
    """The contents page: every chapter of the README's table, linked where it is in `built`."""
    lines = [
        "# RL-enhanced LLMs: a Jupyter companion", "",
        "A runnable companion to *Reinforcement Learning Enhanced LLMs: A Survey* (Wang et al.,",
        "[arXiv 2412.10400](https://arxiv.org/abs/2412.10400)) and to Hao Sun's RL perspective on RLHF",
        "([arXiv 2310.06147](https://arxiv.org/abs/2310.06147)). Each chapter mirrors a section of the survey,",
        "trains something for real and measures an effect. These pages were executed on the `tiny` profile",
        "(CPU, the model zoo); the sources run on the other profiles too.", "",
        "| # | chapter | survey section | what it measures | source |", "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["slug"] in built:
            title, source = f"[{r['title']}](chapters/{r['slug']}.ipynb)", f"{{download}}`{r['slug']}.py <sources/{r['slug']}.py>`"
        else:
            title, source = r["title"] + (" *(not in this build)*" if r["slug"] else " *(planned)*"), ""
        lines.append(f"| {r['number']} | {title} | {r['section']} | {r['measures']} | {source} |")
    lines += ["", "```{toctree}", ":hidden:", ":maxdepth: 1", "", *[f"chapters/{s}" for s in sorted(built)], "```", ""]
    return "\n".join(lines)


def write_project(root: Path, out: Path, slugs: list[str] | None = None) -> Path:
    """Write the Sphinx project for the chapters `slugs` (None: every written chapter) under
    `out/src`; returns that directory. ValueError names a chapter that does not exist."""
    rows = chapter_table((root / "README.md").read_text())
    written = [r["slug"] for r in rows if r["slug"]]
    unknown = sorted(set(slugs or []) - set(written))
    if unknown:
        raise ValueError(f"no chapter {unknown}; the written chapters are: {', '.join(written)}")
    keep = set(slugs or written)
    src = out / "src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "chapters").mkdir(parents=True)
    (src / "sources").mkdir()
    (src / "conf.py").write_text(conf_py())
    (src / "index.md").write_text(index_md(rows, keep))
    for slug in sorted(keep):
        shutil.copy(root / "chapters" / f"{slug}.ipynb", src / "chapters")
        shutil.copy(root / "chapters" / f"{slug}.py", src / "sources")
    import jupyter_server_mathjax

    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", src / "_static" / "mathjax")
    return src


def build(root: Path, out: Path, slugs: list[str] | None = None) -> Path:
    """Execute the chapters and build the HTML site; returns its index.html."""
    from sphinx.cmd.build import build_main

    src = write_project(root, out, slugs)
    saved = dict(os.environ)
    os.environ[STATIC_ENV] = "1"  # the kernels myst-nb starts inherit these
    os.environ.setdefault("SURVEY_RESULTS_DIR", str((out / "results").resolve()))
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        status = build_main(["-b", "html", "-q", "-j", "1", str(src), str(out / "html")])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if status:
        raise SystemExit(f"sphinx-build failed (status {status}); the chapter's error is printed above")
    return out / "html" / "index.html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m survey_lib.site", description=__doc__.split("\n")[0])
    parser.add_argument("--chapters", help="comma-separated slugs (default: every written chapter)")
    parser.add_argument("--out", default="build/site", type=Path)
    parser.add_argument("--root", default=".", type=Path, help="the repository (README.md, chapters/)")
    args = parser.parse_args(argv)
    slugs = [s.strip() for s in args.chapters.split(",")] if args.chapters else None
    print(f"site: {build(args.root.resolve(), args.out, slugs)}")


if __name__ == "__main__":
    main(sys.argv[1:])
