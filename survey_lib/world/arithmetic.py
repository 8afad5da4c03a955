"""The verifiable-reward task: small additions with an exact checker.

Defined for the foundation (the zoo's arithmetic model) and used by chapter 09 (RL for
reasoning: GRPO / RLOO with verifiable rewards, as in DeepSeek-R1, 2501.12948).

A prompt is "a+b=" and the answer is the decimal sum. The pre-training corpus writes the
right answer, except that on problems with a carry a fraction `carry_error_rate` of
answers forget the carry (digit-wise sum mod 10), the classic schoolchild error. A model
pre-trained on it is partly right by construction, so RL with the checker as reward has
room to raise its accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_range, check_type

VOCABULARY = list("0123456789+=")


def carry_free_sum(a: int, b: int) -> int:
    """a + b with every carry forgotten: digit-wise (x + y) mod 10."""
    out, place = 0, 1
    while a or b:
        out += ((a % 10 + b % 10) % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return out


@dataclass
class Additions:
    """Problems a + b with 0 <= a, b <= max_operand, prompted as "a+b=": what the two
    verifiable tasks share (this one, answered at once, and `column_addition`'s, answered
    with written work)."""

    max_operand: int = 99
    """Largest operand (99 gives two-digit additions)."""

    def __post_init__(self):
        check_type("max_operand", self.max_operand, int)
        check_range("max_operand", self.max_operand, 1)

    def sample_problems(self, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        operands = rng.integers(0, self.max_operand + 1, size=(n, 2))
        return [(int(a), int(b)) for a, b in operands]

    @staticmethod
    def prompt(a: int, b: int) -> str:
        return f"{a}+{b}="


@dataclass
class ArithmeticTask(Additions):
    """Additions answered at once, with a checker of the sum.

    Args:
        max_operand: largest operand (99 gives two-digit additions).
        carry_error_rate: in the pre-training corpus, the fraction of carry problems
            answered with the carry forgotten.
    """

    carry_error_rate: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        check_range("carry_error_rate", self.carry_error_rate, 0, 1)

    @property
    def vocabulary(self) -> list[str]:
        return VOCABULARY

    def corpus(self, n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
        """n (prompt, answer) pairs, carry problems wrong at `carry_error_rate`."""
        rows = []
        for a, b in self.sample_problems(n, rng):
            answer = a + b
            if carry_free_sum(a, b) != answer and rng.random() < self.carry_error_rate:
                answer = carry_free_sum(a, b)
            rows.append((self.prompt(a, b), str(answer)))
        return rows

    @staticmethod
    def verify(prompts: list[str], completions: list[str]) -> np.ndarray:
        """1.0 where the completion is exactly the right sum, else 0.0 (the verifiable reward)."""
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
        rewards = np.zeros(len(prompts))
        for i, (p, c) in enumerate(zip(prompts, completions)):
            a, b = p.rstrip("=").split("+")
            rewards[i] = float(c.strip() == str(int(a) + int(b)))
        return rewards
