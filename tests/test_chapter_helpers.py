"""The helpers that chapters 04 and 07 call instead of writing the logic in their cells:
plots, candidate rows, the best-of-n frontier point; and two chapter-04 regressions."""
import ast
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest

from survey_lib.overoptimization import best_of_n_at_most, fit_gao
from survey_lib.plots import frontier_scatter, overoptimization_panel, ppo_training_curves
from survey_lib.preference_data import ResponsePairs, candidate_pairs, candidate_rows

CHAPTER_04 = Path(__file__).resolve().parents[1] / "chapters" / "04_policy_optimization.py"


@pytest.fixture
def figure():
    fig = plt.figure()
    yield fig
    plt.close(fig)


def test_frontier_scatter_draws_one_labelled_point_per_method(figure):
    ax = figure.add_subplot()
    points = {"PPO": {"kl": 1.5, "gold": 0.7}, "RLOO": {"kl": 0.4, "gold": 0.5}, "PRO": {"kl": 0.8, "gold": 0.5}}
    frontier_scatter(ax, points, "gold")
    assert [t.get_text() for t in ax.texts] == ["PPO", "RLOO", "PRO"]
    assert [tuple(t.xy) for t in ax.texts] == [(1.5, 0.7), (0.4, 0.5), (0.8, 0.5)]
    assert [c.get_offsets().tolist() for c in ax.collections] == [[[1.5, 0.7]], [[0.4, 0.5]], [[0.8, 0.5]]]
    for i, c in enumerate(ax.collections):  # colour Ci, as the chapters' curves use the same cycle
        assert mcolors.to_hex(c.get_facecolor()[0]) == mcolors.to_hex(f"C{i}")


def test_frontier_scatter_reads_any_reward_key(figure):
    ax = figure.add_subplot()
    frontier_scatter(ax, {"A": {"kl": 0.2, "gold": 0.1, "proxy": 2.0}}, "proxy")
    assert ax.collections[0].get_offsets().tolist() == [[0.2, 2.0]]


def history(steps: int) -> list[dict]:
    return [{"step": t, "score": 0.1 * t, "kl": 0.5 * t, "kl_coef": 0.05, "vf_loss": 1.0 / (t + 1), "clipfrac": 0.02}
            for t in range(steps)]


def test_ppo_training_curves_draw_each_quantity_over_the_iterations(figure):
    axes = figure.subplots(1, 3)
    ppo_training_curves(axes, history(4), kl_target=2.0)
    reward, kl, critic = axes
    assert len(reward.lines) == 1 and list(reward.lines[0].get_xdata()) == [1, 2, 3, 4]
    assert len(kl.lines) == 2 and list(kl.lines[1].get_ydata()) == [2.0, 2.0]  # the KL and its target
    assert [line.get_label() for line in critic.lines] == ["value loss", "fraction of ratios clipped"]
    assert len(figure.axes) == 4  # the controller's coefficient on a twin axis


def test_ppo_training_curves_without_a_kl_target(figure):
    axes = figure.subplots(1, 3)
    ppo_training_curves(axes, history(3), kl_target=None)
    assert len(axes[1].lines) == 1


def test_overoptimization_panel_plots_gains_over_the_first_point_and_the_fit(figure):
    ax = figure.add_subplot()
    points = [{"kl": 0.0, "gold": 0.2, "proxy": 1.0}, {"kl": 1.0, "gold": 0.6, "proxy": 1.5},
              {"kl": 4.0, "gold": 0.8, "proxy": 2.0}, {"kl": 9.0, "gold": 0.5, "proxy": 2.4}]
    fit = fit_gao([p["kl"] for p in points], [p["gold"] - 0.2 for p in points], "bon")
    overoptimization_panel(ax, points, fit, "bon", "best-of-n")
    proxy, gold, curve = ax.lines
    assert proxy.get_xdata().tolist() == [0.0, 1.0, 2.0, 3.0]  # d = sqrt(KL)
    assert np.allclose(proxy.get_ydata(), [0.0, 0.5, 1.0, 1.4]) and np.allclose(gold.get_ydata(), [0.0, 0.4, 0.6, 0.3])
    assert len(curve.get_xdata()) == 100 and curve.get_label().startswith("fit d(α − βd)")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["proxy gain", "gold gain", curve.get_label()]
    assert ax.get_title() == "best-of-n"
    with pytest.raises(ValueError, match="form"):
        overoptimization_panel(ax, points, fit, "ppo", "?")


def test_candidate_rows_group_flat_candidates_per_prompt():
    rows = candidate_rows(["the movie", "the film"], ["was good .", "was bad .", "is fun .", "is dull ."],
                          np.array([1.5, -0.5, 2.0, 0.25]))
    assert rows == [
        {"prompt": "the movie", "completions": ["was good .", "was bad ."], "rewards": [1.5, -0.5]},
        {"prompt": "the film", "completions": ["is fun .", "is dull ."], "rewards": [2.0, 0.25]},
    ]
    assert all(type(r) is float for row in rows for r in row["rewards"])  # plain floats, as rows read from JSON


@pytest.mark.parametrize("candidates, rewards", [(["a", "b", "c"], [1.0, 2.0, 3.0]), (["a", "b"], [1.0])])
def test_candidate_rows_reject_uneven_groups_and_missing_rewards(candidates, rewards):
    with pytest.raises(ValueError, match="same number of candidates"):
        candidate_rows(["p", "q"], candidates, rewards)


def test_candidate_pairs_keep_the_picks_and_drop_identical_responses():
    rows = [{"prompt": "the movie", "completions": ["was good .", "was bad .", "was fine ."], "rewards": [1.0, 0.0, 0.5]},
            {"prompt": "the film", "completions": ["is fun .", "is fun .", "is dull ."], "rewards": [1.0, 1.0, 0.0]},
            {"prompt": "a show", "completions": ["was long .", "was short .", "was ok ."], "rewards": [0.0, 1.0, 0.5]}]
    pairs = candidate_pairs(rows, [[2, 0], [0, 1], [1, 2]])
    assert pairs == ResponsePairs(["the movie", "a show"], ["was fine .", "was short ."], ["was good .", "was ok ."])
    assert len(candidate_pairs(rows[1:2], [[1, 0]])) == 0
    with pytest.raises(ValueError, match="one pick per row"):
        candidate_pairs(rows, [[0, 1]])


def sweep(ns: list[int]) -> list[dict]:
    return [{"n": n, "kl": float(np.log(n) - (n - 1) / n), "proxy": 0.1 * n, "gold": 0.01 * n} for n in ns]


def test_best_of_n_at_most_takes_16_from_the_default_sweep():
    assert best_of_n_at_most(sweep([1, 2, 4, 8, 16, 32, 64]), 16)["n"] == 16


def test_best_of_n_at_most_falls_back_to_the_largest_smaller_n():
    # chapter 04 with bon_ns=1,2,4,8 raised StopIteration looking for n == 16
    assert best_of_n_at_most(sweep([1, 2, 4, 8]), 16) == sweep([8])[0]


def test_best_of_n_at_most_names_bon_ns_when_no_n_is_small_enough():
    with pytest.raises(ValueError, match="bon_ns"):
        best_of_n_at_most(sweep([32, 64]), 16)


def calls_to(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name]


def test_chapter_04_evaluates_each_policy_once():
    # it used to sample and score a second 512-sample evaluation of PPO only to print four of
    # its completions; the chapter's `evaluate` now keeps the completions of the first one
    tree = ast.parse(CHAPTER_04.read_text())
    evaluate = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "evaluate")
    assert len(calls_to(tree, "evaluate_policy")) == len(calls_to(evaluate, "evaluate_policy")) == 1


def test_evaluation_callback_evaluates_every_k_steps_or_at_listed_steps(monkeypatch):
    """Chapter 04's sweep evaluates densely at the start (a list of step counts); its PPO run
    every k steps. The callback counts steps from 1, as the trainers' step + 1."""
    from survey_lib import policy_eval

    monkeypatch.setattr(policy_eval, "evaluate_policy", lambda *a, **k: {"kl": 0.0, "gold": 1.0, "samples": None})
    for every, expected in ((3, [3, 6, 9]), ([1, 2, 8, 4], [1, 2, 4, 8])):
        callback, points = policy_eval.evaluation_callback(None, None, None, None, every=every)
        for step in range(10):
            callback(step, None)
        assert [p["step"] for p in points] == expected and "samples" not in points[0]
    for bad in (0, True, [], [0, 2], [1.5], "4"):
        with pytest.raises(ValueError, match="every"):
            policy_eval.evaluation_callback(None, None, None, None, every=bad)


def test_evaluate_policy_of_the_reference_itself_is_zero_kl_and_keeps_samples_to_read():
    """The frontier point of pi_ref against its own baseline: every sample's log-ratio is
    exactly 0; "shown" holds the first samples, each with the gold counted in the mean
    (chapters 04 and 07 give them to `widgets.frontier_explorer`)."""
    from survey_lib.models import load_model
    from survey_lib.policy_eval import SHOWN_SAMPLES, evaluate_policy, reference_baseline
    from survey_lib.profiles import get_profile

    world = get_profile("tiny").world(0)
    model, tokenizer = load_model("tiny-text-lm")
    baseline = reference_baseline(model, tokenizer, world, 16, seed=1)
    point = evaluate_policy(model, model, tokenizer, world, baseline, seed=2)
    assert point["kl"] == 0.0 and np.all(point["samples"]["kl"] == 0.0)
    assert len(point["shown"]) == SHOWN_SAMPLES
    for (prompt, response, gold), p, c, g in zip(point["shown"], baseline.prompts, point["completions"], point["samples"]["gold"]):
        assert (prompt, response, gold) == (p, c, float(g))
    assert point["gold"] == pytest.approx(float(np.mean(point["samples"]["gold"])))
