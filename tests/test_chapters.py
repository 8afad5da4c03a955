"""Run every chapter headless on the default profile; hold its headline metrics in bands.

Each band states what the chapter claims (DESIGN section 2 and the chapter's issue), not the
value one run happened to print. Budgets: DESIGN section 6 and the issues.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))


def check_01_rl_basics(m):
    # the measured variance ratio agrees with its closed form, and a baseline removes most of
    # the variance when rewards sit far from zero (offset 5 against arm spread 1 and noise 1)
    assert m["variance_ratio"] == pytest.approx(m["variance_ratio_exact"], rel=0.1)
    assert m["variance_ratio_exact"] > 5
    # clipping stops the ratio just past 1 + eps = 1.2; the plain surrogate runs away
    assert 1.15 < m["ppo_clip_ratio"] < 1.35 and m["unclipped_ratio"] > 2
    # the acceptance: KL(pi || pi*) falls at least tenfold for both methods
    for method in ("reinforce", "ppo"):
        assert m[f"{method}_kl_end"] < m[f"{method}_kl_start"] / 10


CHECKS = {"01_rl_basics": (check_01_rl_basics, 60)}  # slug -> (bands, wall-time budget in s)
PEAK_RSS_MB = 1536


def test_every_chapter_has_bands():
    assert sorted(CHECKS) == [p.stem for p in SOURCES]


@pytest.mark.chapter
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_chapter_runs_headless_within_bands_and_budget(source, tmp_path):
    env = {**os.environ, "SURVEY_RESULTS_DIR": str(tmp_path), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    started = time.time()
    proc = subprocess.run([sys.executable, str(source)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.time() - started  # the whole headless run, imports included
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads((tmp_path / f"{source.stem}.json").read_text())
    check, budget = CHECKS[source.stem]
    check(record["headline"])
    assert wall <= budget, f"{source.stem} took {wall:.0f} s (budget {budget} s)"
    assert record["peak_rss_mb"] <= PEAK_RSS_MB, f"{source.stem} peaked at {record['peak_rss_mb']} MB"
    assert list((tmp_path / "figures").glob(f"{source.stem}-*.png")), "the chapter saved no figure"
