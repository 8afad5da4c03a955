import json

import matplotlib.pyplot as plt
import pytest

from survey_lib import report
from survey_lib.book import Chapter, apply_overrides
from survey_lib.sizes import SIZES


def test_overrides_parse_with_the_defaults_type():
    ns = {"seed": 0, "beta": 0.5, "profile": "tiny", "plot": True, "np": object()}
    changes = apply_overrides(ns, ["seed=3", "beta=0.1", "profile=colab", "plot=false"])
    assert changes == {"seed": 3, "beta": 0.1, "profile": "colab", "plot": False}
    assert ns["seed"] == 3 and isinstance(ns["beta"], float)


@pytest.mark.parametrize(
    "arg, match",
    [("seeds=3", "unknown parameter 'seeds'"), ("seed=abc", "parameter seed expects int"), ("seed", "expected key=value"), ("plot=maybe", "true or false"), ("np=1", "unknown parameter 'np'")],
)
def test_bad_overrides_name_the_parameter(arg, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides({"seed": 0, "plot": True, "np": object()}, [arg])


def test_chapter_writes_metrics_figures_and_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEY_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["01_demo.py", "seed=2"])
    ns = {"profile": "tiny", "seed": 0, "steps": 10}
    chapter = Chapter("01_demo", ns)
    assert ns["seed"] == 2 and chapter.parameters == {"profile": "tiny", "seed": 2, "steps": 10}
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    chapter.show(fig, "line")
    assert (tmp_path / "figures" / "01_demo-line.png").exists()
    chapter.finish({"kl_end": 0.01})
    record = json.loads((tmp_path / "01_demo.json").read_text())
    assert record["headline"] == {"kl_end": 0.01} and record["peak_rss_mb"] > 0 and record["wall_seconds"] >= 0
    table = report.summary_table()
    assert "01_demo" in table and "kl_end = 0.01" in table


def test_chapter_rejects_unknown_profile_and_bad_seed(monkeypatch):
    monkeypatch.setattr("sys.argv", ["x.py"])
    with pytest.raises(ValueError, match="'tiny', 'small', 'colab', 'gpu'"):
        Chapter("01_demo", {"profile": "huge", "seed": 0})
    with pytest.raises(ValueError, match="seed"):
        Chapter("01_demo", {"profile": "tiny", "seed": -1})


def test_a_profile_sets_the_chapters_sizes_and_the_command_line_wins(monkeypatch):
    monkeypatch.setitem(SIZES, "01_demo", {"small": {"steps": 3, "width": 8}})
    monkeypatch.setattr("sys.argv", ["01_demo.py", "profile=small", "width=5"])
    ns = {"profile": "tiny", "seed": 0, "steps": 10, "width": 64}
    chapter = Chapter("01_demo", ns)
    assert ns["steps"] == 3 and ns["width"] == 5 and chapter.parameters["steps"] == 3
    monkeypatch.setattr("sys.argv", ["01_demo.py"])
    assert Chapter("01_demo", {"profile": "tiny", "seed": 0, "steps": 10, "width": 64}).parameters["steps"] == 10
    monkeypatch.setitem(SIZES, "01_demo", {"small": {"stepz": 3}})
    with pytest.raises(ValueError, match=r"sets \['stepz'\] for 01_demo"):
        Chapter("01_demo", {"profile": "small", "seed": 0, "steps": 10})


def test_a_chapter_not_sized_for_a_profile_says_where_it_runs(monkeypatch):
    monkeypatch.setattr("sys.argv", ["x.py"])
    with pytest.raises(ValueError, match="not sized for the 'colab' profile yet; it runs on: tiny, small"):
        Chapter("01_rl_basics", {"profile": "colab", "seed": 0})
    with pytest.raises(ValueError, match="it runs on: tiny \\("):
        Chapter("05_rlaif", {"profile": "small", "seed": 0})


def test_the_book_runs_on_a_profile_only_the_chapters_sized_for_it():
    from survey_lib.sizes import chapters_on

    slugs = ["01_rl_basics", "05_rlaif"]
    assert chapters_on("tiny", slugs) == slugs
    assert chapters_on("small", slugs) == ["01_rl_basics"]


def test_a_chapter_process_reports_its_own_peak_memory_not_its_parents():
    import subprocess
    import sys

    ballast = bytearray(1500 * 2**20)  # this process's peak passes 1.5 GB
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])
    child = subprocess.run([sys.executable, "-c", "from survey_lib.book import peak_rss_mb; print(peak_rss_mb())"],
                           capture_output=True, text=True, check=True)
    assert float(child.stdout) < 1000 < len(ballast) / 2**20  # the child imports torch: about 420 MB


def test_select_methods_picks_names_and_families_in_order_and_names_the_choices():
    from survey_lib.book import select_methods

    methods = {"DPO β=0.1": 1, "DPO β=1": 2, "IPO": 3, "sDPO (3 stages)": 4}
    assert select_methods(methods, "all") == methods
    assert list(select_methods(methods, "IPO, DPO")) == ["DPO β=0.1", "DPO β=1", "IPO"]
    assert list(select_methods(methods, "sDPO")) == ["sDPO (3 stages)"]
    with pytest.raises(ValueError, match="no method named 'PPO' .* from: DPO β=0.1, DPO β=1, IPO"):
        select_methods(methods, "PPO,IPO")
