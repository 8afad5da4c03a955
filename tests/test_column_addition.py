"""survey_lib.world.column_addition (chapter 09): written work by hand, the planted errors at
their rates, the checker and the format check, and the two zoo models built on it."""
import numpy as np
import pytest

from survey_lib.generation import sample_completions
from survey_lib.models import load_model
from survey_lib.world.column_addition import ColumnAdditionTask

EXACT = ColumnAdditionTask(forget_carry_rate=0, slip_rate=0, repair_rate=0, shortcut_rate=0)


@pytest.mark.parametrize("a, b, work", [
    (47, 85, "7+5=12,4+8+1=13>132"),
    (5, 123, "5+3=8,0+2=2,0+1=1>128"),
    (999, 999, "9+9=18,9+9+1=19,9+9+1=19>1998"),
    (0, 0, "0+0=0>0"),
])
def test_work_written_without_errors(a, b, work):
    assert EXACT.worked(a, b, np.random.default_rng(0)) == work
    assert EXACT.verify([EXACT.prompt(a, b)], [work])[0] == 1.0
    assert EXACT.well_formed([work])[0] == 1.0


def test_a_forgotten_carry_carries_into_the_answer_and_a_repair_fixes_it():
    forgetful = ColumnAdditionTask(forget_carry_rate=1, slip_rate=0, repair_rate=0, shortcut_rate=0)
    assert forgetful.worked(47, 85, np.random.default_rng(0)) == "7+5=12,4+8=12>122"
    repaired = ColumnAdditionTask(forget_carry_rate=1, slip_rate=0, repair_rate=1, shortcut_rate=0)
    work = repaired.worked(47, 85, np.random.default_rng(0))
    assert work == "7+5=12,4+8=12~4+8+1=13>132"
    assert repaired.verify(["47+85="], [work])[0] == 1.0 and repaired.well_formed([work])[0] == 1.0


def test_a_shortcut_writes_no_work_and_is_not_well_formed():
    task = ColumnAdditionTask(shortcut_rate=1, shortcut_carry_error_rate=1)
    prompt, answer = task.corpus(1, np.random.default_rng(3))[0]
    a, b = map(int, prompt.rstrip("=").split("+"))
    assert answer.startswith(">") and task.well_formed([answer])[0] == 0.0
    assert ColumnAdditionTask(shortcut_carry_error_rate=1).shortcut(846, 175, np.random.default_rng(0)) == ">911"
    assert ColumnAdditionTask(shortcut_carry_error_rate=0).shortcut(846, 175, np.random.default_rng(0)) == ">1021"


def test_the_corpus_plants_errors_at_about_their_rates():
    task = ColumnAdditionTask()
    rows = task.corpus(4000, np.random.default_rng(0))
    prompts, completions = [p for p, _ in rows], [c for _, c in rows]
    worked = task.well_formed(completions).astype(bool)
    right = task.verify(prompts, completions).astype(bool)
    assert worked.mean() == pytest.approx(1 - task.shortcut_rate, abs=0.03)
    assert 0.6 < right[worked].mean() < 0.85 and right[~worked].mean() < right[worked].mean()
    assert 0.03 < np.mean(["~" in c for c in completions]) < 0.15
    assert max(len(c) for c in completions) <= task.max_response_length


@pytest.mark.parametrize("completion, right, formed", [
    ("7+5=12,4+8+1=13>132", 1, 1), (">132", 1, 0), ("132", 0, 0), ("7+5=12>132", 1, 1),
    ("7+5=12,4+8+1=13>131", 0, 1), ("7+5=12,4+8+1=13>132>5", 0, 0), ("", 0, 0), ("7+5=12,", 0, 0),
])
def test_the_checker_reads_the_last_answer_and_the_format_check_wants_work(completion, right, formed):
    assert ColumnAdditionTask.verify(["47+85="], [completion])[0] == right
    assert ColumnAdditionTask.well_formed([completion])[0] == formed


@pytest.mark.parametrize("completion, labels", [
    ("7+5=12,4+8+1=13>132", [True, True, True]),
    ("7+5=12,4+8=12~4+8+1=13>132", [True, False, True, True]),  # a forgotten carry, repaired
    ("7+5=12,4+8=12>122", [True, False, False]),  # ... carried into the answer
    ("7+5=13,4+8+1=13>132", [False, True, True]),  # a slip; the next column's carry is still due
    ("7+5=12,4+8+1=13,0+0+1=1>132", [True, True, False, True]),  # a column the problem does not have
    (">132", [True]), (">122", [False]), ("", []),
])
def test_step_labels_check_each_column_against_the_true_one(completion, labels):
    steps, got = ColumnAdditionTask().step_labels("47+85=", completion)
    assert got == labels and len(steps) == len(labels) and "".join(steps) == completion


def test_bad_rates_and_lengths_are_named():
    with pytest.raises(ValueError, match="slip_rate"):
        ColumnAdditionTask(slip_rate=1.5)
    with pytest.raises(ValueError, match="2 prompts but 1"):
        ColumnAdditionTask.verify(["1+1=", "2+2="], [">2"])


@pytest.mark.parametrize("name, worked_share", [("tiny-columns-lm", (0.6, 0.95)), ("tiny-columns-base-lm", (0.0, 0.15))])
def test_the_zoo_models_are_partly_right_and_write_work_as_often_as_taught(name, worked_share):
    model, tok = load_model(name)
    task = ColumnAdditionTask()
    prompts = [task.prompt(a, b) for a, b in task.sample_problems(300, np.random.default_rng(5))]
    samples = sample_completions(model, tok, prompts, seed=0)
    accuracy, worked = task.verify(prompts, samples).mean(), task.well_formed(samples).mean()
    assert 0.3 < accuracy < 0.7  # room for RL (chapter 09)
    assert worked_share[0] <= worked <= worked_share[1]
