"""The one home of the project's address: the install cell every chapter opens with on Colab.

Used by every chapter (its first code cell) and by `make sync`, which runs
`python -m survey_lib.colab chapters/NN_slug.py ...` to write `INSTALL_CELL` into each chapter.
On Colab the package is not installed yet when that cell runs, so the cell cannot import
the address: it is written into each chapter from here, and a test checks that every chapter
and the README's badges carry this address. A fork changes `REPOSITORY` and runs `make sync`.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

REPOSITORY = "rl-enhanced-llms/companion"
"""owner/name on GitHub: where Colab installs the package from and the badges point."""
PACKAGE = f"survey-lib @ git+https://github.com/{REPOSITORY}"
"""What the install cell gives to pip."""

INSTALL_CELL = f'''# On Colab, install the companion's package first (harmless elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{PACKAGE}"], check=True)
'''
"""The chapters' first code cell (jupytext percent source, without its `# %%` marker)."""

_CELL = re.compile(r"# On Colab, install the companion's package first.*?\n(?=\n# %%)", re.S)


def write_install_cell(path: Path) -> bool:
    """Write `INSTALL_CELL` over the install cell of chapter source `path`; True if it changed.
    ValueError if the chapter has no install cell."""
    text = path.read_text()
    cells = _CELL.findall(text)
    if len(cells) != 1:
        raise ValueError(f"{path} should have one install cell (starting '# On Colab, install the companion's package "
                         f"first'), found {len(cells)}; copy it from survey_lib/colab.py's INSTALL_CELL")
    new = _CELL.sub(lambda _: INSTALL_CELL, text)
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    for name in sys.argv[1:]:
        if write_install_cell(Path(name)):
            print(f"{name}: install cell rewritten from survey_lib/colab.py")
