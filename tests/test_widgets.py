"""The reader's live views (issue 20): chapter 01's β explorer and a chapter's headline
table, as a notebook shows them and as a script prints them. The browser test drives the
same widget in JupyterLab."""
import json

import pytest
import torch

from survey_lib import book, dashboard, widgets
from survey_lib.book import Chapter
from survey_lib.world.enumerable import EnumerableTask


@pytest.fixture(scope="module")
def task():
    return EnumerableTask(vocab_size=3, length=3, seed=0)


def test_headless_the_beta_explorer_prints_exact_numbers_for_a_range_of_beta(task, capsys):
    assert widgets.beta_explorer(task, 0.5) is None
    lines = capsys.readouterr().out.splitlines()
    assert widgets.beta_summary_line(task, 0.5) in lines and len(lines) == 8  # seven βs from low to high, and 0.5


def test_in_a_notebook_moving_the_slider_redraws_the_numbers_and_the_picture(task, monkeypatch):
    monkeypatch.setattr(dashboard, "in_notebook", lambda: True)
    view = widgets.beta_explorer(task, 0.5)
    slider, summary, image = view.children
    before = (summary.value, bytes(image.value))
    assert summary.value == widgets.beta_summary_line(task, 0.5) and bytes(image.value).startswith(b"\x89PNG")
    slider.value = 0.1
    assert summary.value == widgets.beta_summary_line(task, 0.1) and (summary.value, bytes(image.value)) != before
    kl = task.optimum_summary(0.1)["kl_to_reference"]
    assert f"{kl:.3f}" in summary.value


def test_for_a_static_page_the_beta_explorer_prints_its_table_even_in_a_notebook(task, monkeypatch, capsys):
    monkeypatch.setattr(dashboard, "in_notebook", lambda: True)
    monkeypatch.setenv(dashboard.STATIC_ENV, "1")
    assert widgets.beta_explorer(task, 0.5) is None and widgets.beta_summary_line(task, 0.5) in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, match", [({"beta": 50.0}, "beta"), ({"beta": 1.0, "low": 0.0}, "low"), ({"beta": 1.0, "high": 0.01}, "high")])
def test_the_beta_explorer_names_a_bad_range(task, kwargs, match):
    with pytest.raises(ValueError, match=match):
        widgets.beta_explorer(task, **kwargs)


def test_a_notebook_gets_the_headline_as_a_table_a_script_as_one_json_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SURVEY_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["01_demo.py"])
    Chapter("01_demo", {"profile": "tiny", "seed": 0}).finish({"kl_end": 0.012345, "gain": {"low": 0.1}})
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"chapter": "01_demo", "kl_end": 0.012345, "gain": {"low": 0.1}}

    shown = []
    monkeypatch.setattr(book, "in_notebook", lambda: True)
    monkeypatch.setattr("IPython.display.display", shown.append)
    Chapter("01_demo", {"profile": "tiny", "seed": 0}).finish({"kl_end": 0.012345, "gain": {"low": 0.1}})
    assert capsys.readouterr().out == ""
    table = shown[0].data
    assert "| kl_end | 0.01235 |" in table and "| gain | {low: 0.1} |" in table


class FakeHandle:
    def __init__(self):
        self.shown = []

    def update(self, obj):
        self.shown.append(obj)


@pytest.fixture
def notebook_cell(monkeypatch):
    """A notebook kernel whose cells' displays are recorded: returns a function that starts cell n."""
    handles = []
    monkeypatch.setattr(dashboard, "in_notebook", lambda: True)
    monkeypatch.setattr(dashboard.LiveCurves, "_panel", None)
    monkeypatch.setattr("IPython.display.display", lambda obj, display_id=None: handles.append(FakeHandle()) or handles[-1])
    shell = type("Shell", (), {"execution_count": 1})()
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)

    def start_cell(n):
        shell.execution_count = n
        return handles
    return start_cell


def test_a_trainer_draws_live_curves_in_a_notebook_one_panel_per_cell_and_nothing_headless(notebook_cell, monkeypatch):
    from survey_lib.reward_models import RewardConfig, train_reward_model
    from survey_lib.models import load_model

    model, tokenizer = load_model("tiny-text-lm", head="reward")
    rows = [{"prompt": "the movie", "chosen": "was great", "rejected": "was bad"}] * 8
    handles = notebook_cell(1)
    train_reward_model(model, RewardConfig(epochs=1, batch_size=4, min_steps=5), rows, tokenizer=tokenizer)
    train_reward_model(model, RewardConfig(epochs=1, batch_size=4, min_steps=5), rows, tokenizer=tokenizer)
    assert len(handles) == 1  # the second fit in the same cell replaces the first one's curves
    last = handles[0].shown[-1]
    assert last.data.startswith(b"\x89PNG")  # the final draw, at the last step, always happens
    notebook_cell(2)
    train_reward_model(model, RewardConfig(epochs=1, batch_size=4, min_steps=3), rows, tokenizer=tokenizer)
    assert len(handles) == 2

    monkeypatch.setattr(dashboard, "in_notebook", lambda: False)
    assert dashboard.live_curves("headless") is None
    monkeypatch.setattr(dashboard, "in_notebook", lambda: True)
    monkeypatch.setattr(dashboard, "DASHBOARDS", False)
    assert dashboard.live_curves("switched off") is None


def test_the_enumerable_trainers_draw_live_curves_too(notebook_cell):
    """fit_policy and fit_dro (chapters 07, 08) draw their own run; self-play draws one curve
    per iteration and keeps its inner DNO fits off the panel."""
    from survey_lib.enumerable_preferences import all_pairs, bradley_terry_matrix, fit_dro, fit_policy, self_play
    from survey_lib.preference_config import PreferenceConfig

    task = EnumerableTask(vocab_size=3, length=2, seed=0)
    handles = notebook_cell(1)
    fit_policy(task, all_pairs(bradley_terry_matrix(task)), PreferenceConfig(loss="ipo"), 4)
    fit_dro(task, 0.5, 4)
    assert len(handles) == 1 and len(handles[0].shown) >= 3  # one panel; each run's first and last steps
    handles = notebook_cell(2)
    rps = torch.tensor([[0.5, 0.9, 0.1], [0.1, 0.5, 0.9], [0.9, 0.1, 0.5]])
    game = EnumerableTask(vocab_size=3, length=1, seed=0)
    self_play(game, rps, "dno", 3, steps=5)
    assert len(handles) == 2 and len(handles[1].shown) == 2  # iterations 1 and 3 only: no inner fit drew


def test_live_curves_redraw_at_most_every_interval_and_always_at_the_end(notebook_cell):
    handles = notebook_cell(1)
    curves = dashboard.LiveCurves("run", every_seconds=3600)
    history = []
    for step in range(5):
        history.append({"step": step, "loss": 1.0 / (step + 1), "kl": 0.1 * step})
        curves.update(history, total=5)
    assert len(handles[0].shown) == 2  # the first step, then the last


def test_live_curves_keep_drawing_under_their_share_of_the_run(notebook_cell, monkeypatch):
    """A draw that takes 1 s (a fake clock) holds the next one off for 19 s; a step takes 1 s."""
    clock = [0.0]
    monkeypatch.setattr(dashboard.time, "monotonic", lambda: clock[0])
    real_png = dashboard.figure_png

    def slow_png(figure):
        clock[0] += 1.0
        return real_png(figure)
    monkeypatch.setattr(dashboard, "figure_png", slow_png)
    handles = notebook_cell(1)
    curves, history = dashboard.LiveCurves("run", every_seconds=0.0), []
    for step in range(30):
        history.append({"loss": 1.0 / (step + 1)})
        curves.update(history, total=30)
        clock[0] += 1.0
    assert len(handles[0].shown) == 3  # step 0; step 19, 20 s after the first draw began; the last step
    assert dashboard.MAX_DRAW_SHARE == 0.05


def test_live_curves_for_a_static_page_draw_only_the_last_step(notebook_cell, monkeypatch):
    monkeypatch.setenv(dashboard.STATIC_ENV, "1")
    handles = notebook_cell(1)
    curves, history = dashboard.LiveCurves("run", every_seconds=0.0), []
    for step in range(5):
        history.append({"loss": 1.0 / (step + 1)})
        curves.update(history, total=5)
    assert len(handles[0].shown) == 1 and b"PNG" in handles[0].shown[0].data[:8]


POINTS = {"DPO": {"kl": 1.0, "gold": 0.4}, "IPO": {"kl": 0.5, "gold": 0.3}, "best-of-16": {"kl": 1.9, "gold": 0.5}}
SAMPLES = {"DPO": [("the movie", "was great <b>", 0.9)], "IPO": [("the film", "was fine", 0.2)]}


def test_the_frontier_explorer_shows_the_ticked_methods_and_the_picked_methods_samples(monkeypatch):
    monkeypatch.setattr(dashboard, "in_notebook", lambda: True)
    view = widgets.frontier_explorer(POINTS, SAMPLES)
    (boxes, image), pick, table = view.children[0].children, view.children[1], view.children[2]
    assert [b.description for b in boxes.children] == list(POINTS) and pick.options == ("DPO", "IPO")
    assert "was great &lt;b&gt;" in table.value and "+0.90" in table.value  # escaped, with its gold
    before = bytes(image.value)
    boxes.children[0].value = False  # hide DPO
    assert bytes(image.value) != before
    pick.value = "IPO"
    assert "was fine" in table.value and "was great" not in table.value


def test_headless_the_frontier_explorer_prints_a_sample_per_method_and_names_bad_input(capsys):
    assert widgets.frontier_explorer(POINTS, SAMPLES) is None
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "was great" in out[0] and "+0.90" in out[0]
    with pytest.raises(ValueError, match="PPO"):
        widgets.frontier_explorer(POINTS, {"PPO": [("p", "r", 0.0)]})
