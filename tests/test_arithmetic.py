import numpy as np
import pytest

from survey_lib.world.arithmetic import ArithmeticTask, carry_free_sum


def test_carry_free_sum():
    assert carry_free_sum(17, 25) == 32  # 7+5=12 -> 2, 1+2=3
    assert carry_free_sum(99, 99) == 88
    assert carry_free_sum(12, 34) == 46  # no carry: the right answer


def test_verify_is_exact():
    assert list(ArithmeticTask.verify(["17+25=", "17+25=", "3+4=", "3+4="], ["42", "32", " 7", "7 1"])) == [1, 0, 1, 0]


def test_corpus_errs_on_carries_at_the_configured_rate():
    task = ArithmeticTask(carry_error_rate=0.5)
    rows = task.corpus(20000, np.random.default_rng(0))
    carry = [(p, a) for p, a in rows if carry_free_sum(*map(int, p[:-1].split("+"))) != sum(map(int, p[:-1].split("+")))]
    wrong = 1 - task.verify([p for p, _ in carry], [a for _, a in carry]).mean()
    assert wrong == pytest.approx(0.5, abs=0.02)
    assert task.verify([p for p, _ in rows], [a for _, a in rows]).mean() < 0.8


def test_bad_configuration():
    with pytest.raises(ValueError, match="carry_error_rate"):
        ArithmeticTask(carry_error_rate=1.5)
    with pytest.raises(ValueError, match="2 prompts but 1"):
        ArithmeticTask.verify(["1+1=", "2+2="], ["2"])
