"""Binder's files agree with the project (issue 20). `make binder-check` reproduces the build
itself (binder/reproduce.sh: about 5 minutes, run in CI after the tests)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def test_binder_pins_the_torch_the_makefile_installs():
    torch_spec = re.search(r"^TORCH_SPEC \?= (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert torch_spec in (BINDER / "requirements.txt").read_text().split()


def test_binder_runs_a_python_the_package_supports():
    runtime = re.fullmatch(r"python-(\d+)\.(\d+)", (BINDER / "runtime.txt").read_text().strip())
    lowest = re.search(r'requires-python = ">=(\d+)\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert runtime and lowest and tuple(map(int, runtime.groups())) >= tuple(map(int, lowest.groups()))


def test_post_build_installs_the_package_and_the_jupyterlab_settings_the_makefile_installs():
    post_build = (BINDER / "postBuild").read_text()
    assert 'pip install --no-cache-dir -e ".[notebooks]"' in post_build
    assert "binder/overrides.json" in post_build and "binder/overrides.json" in (ROOT / "Makefile").read_text()
