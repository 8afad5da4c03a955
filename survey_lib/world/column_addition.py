"""Additions written out column by column: the reasoning task, where work has length
(chapter 09, RL for reasoning).

A prompt is "a+b=" and a completion writes its work, then its answer after ">":

    "47+85=" -> "7+5=12,4+8+1=13>132"

one column per digit from the right, each "x+y=s", or "x+y+1=s" when a carry comes in. The
pre-training corpus plants the errors a hurried pupil makes, so that a model trained on it
is partly right and its work can be long or short, right or wrong:

- a forgotten carry ("4+8=12" where "4+8+1=13" was due), at `forget_carry_rate` of the
  columns with a carry coming in;
- a slip, a column's sum off by one, at `slip_rate` of the columns;
- a repair: after a wrong column, at `repair_rate`, "~" and the column written again right
  (a longer trace that recovers, the "wait" of the R1 papers in miniature);
- a shortcut: at `shortcut_rate` of problems no work at all, only ">" and an answer that
  forgets each carry with probability `shortcut_carry_error_rate`.

The answer is what the written columns give, so an error in the work carries into it. The
exact checker (`verify`) reads the number after the last ">"; `well_formed` checks the
format (work, then an answer), for R1-Zero's format reward.

`trace_rate` < 1 gives the corpus of a base model that has seen worked solutions only
rarely (as a web-trained base has), the starting point of the R1-Zero experiment: the rest
of its corpus is shortcuts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .._checks import check_range
from .arithmetic import Additions

VOCABULARY = list("0123456789+=,>~")
ANSWER = ">"
"""Marks the answer: the checker reads the number after the last one."""
REPAIR = "~"
"""Starts a column written again after a wrong one."""

_COLUMN = r"\d\+\d(?:\+1)?=\d{1,2}"
_WELL_FORMED = re.compile(rf"{_COLUMN}(?:{REPAIR}{_COLUMN})?(?:,{_COLUMN}(?:{REPAIR}{_COLUMN})?)*{ANSWER}\d+")


def column(x: int, y: int, carry: int, total: int) -> str:
    """One written column: "x+y=total", or "x+y+1=total" with a carry coming in."""
    return f"{x}+{y}+1={total}" if carry else f"{x}+{y}={total}"


@dataclass
class ColumnAdditionTask(Additions):
    """Additions a + b with 0 <= a, b <= max_operand, answered with written work.

    Args:
        max_operand: largest operand (999: three columns, and a carry out of the last).
        forget_carry_rate: of the columns with a carry coming in, the fraction written
            without it.
        slip_rate: of all columns, the fraction whose sum is written off by one.
        repair_rate: after a wrong column, the chance that the next thing written is "~"
            and the column again, right.
        shortcut_rate: the fraction of problems answered with no work.
        shortcut_carry_error_rate: in a shortcut answer, the chance that each carry is
            forgotten.
        trace_rate: the fraction of problems with written work at all; below 1, the others
            are shortcuts (a base model's corpus, for R1-Zero).
    """

    max_operand: int = 999
    forget_carry_rate: float = 0.3
    slip_rate: float = 0.08
    repair_rate: float = 0.3
    shortcut_rate: float = 0.25
    shortcut_carry_error_rate: float = 0.6
    trace_rate: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        for name in ("forget_carry_rate", "slip_rate", "repair_rate", "shortcut_rate", "shortcut_carry_error_rate",
                     "trace_rate"):
            check_range(name, getattr(self, name), 0, 1)

    @property
    def vocabulary(self) -> list[str]:
        return VOCABULARY

    @property
    def max_response_length(self) -> int:
        """Characters in the longest completion the corpus writes: every column repaired."""
        columns = len(str(self.max_operand))
        longest_column = len(column(9, 9, 1, 19))
        return columns * (2 * longest_column + 1) + (columns - 1) + 1 + len(str(2 * self.max_operand))

    def worked(self, a: int, b: int, rng: np.random.Generator) -> str:
        """A written solution with this task's planted errors (rates 0: always right)."""
        width = max(len(str(a)), len(str(b)))
        xs, ys = [int(d) for d in str(a).zfill(width)[::-1]], [int(d) for d in str(b).zfill(width)[::-1]]
        written, digits, carry = [], [], 0
        for x, y in zip(xs, ys):
            due = x + y + carry
            carried = 0 if carry and rng.random() < self.forget_carry_rate else carry
            total = x + y + carried
            if rng.random() < self.slip_rate:
                total += 1 if total == 0 or (total < 19 and rng.random() < 0.5) else -1
            text = column(x, y, carried, total)
            if total != due and rng.random() < self.repair_rate:
                text, total = text + REPAIR + column(x, y, carry, due), due
            written.append(text)
            digits.append(total % 10)
            carry = total // 10
        if carry:
            digits.append(carry)
        return ",".join(written) + ANSWER + str(int("".join(map(str, digits[::-1]))))

    def shortcut(self, a: int, b: int, rng: np.random.Generator) -> str:
        """An answer with no work: each carry forgotten with `shortcut_carry_error_rate`."""
        out, place, carry = 0, 1, 0
        while a or b:
            total = a % 10 + b % 10 + (carry if rng.random() >= self.shortcut_carry_error_rate else 0)
            out += (total % 10) * place
            a, b, place, carry = a // 10, b // 10, place * 10, total // 10
        return ANSWER + str(out + carry * place)  # the carry out of the last column is written

    def corpus(self, n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
        """n (prompt, completion) pairs, with the planted errors."""
        rows = []
        for a, b in self.sample_problems(n, rng):
            shortcut = rng.random() >= self.trace_rate or rng.random() < self.shortcut_rate
            rows.append((self.prompt(a, b), self.shortcut(a, b, rng) if shortcut else self.worked(a, b, rng)))
        return rows

    @staticmethod
    def answer(completion: str) -> int | None:
        """The number after the last ">", or None when there is none."""
        match = re.search(rf"{ANSWER}(\d+)\s*$", completion.strip())
        return int(match.group(1)) if match else None

    @classmethod
    def verify(cls, prompts: list[str], completions: list[str]) -> np.ndarray:
        """1.0 where the answer after the last ">" is the right sum, else 0.0 (the verifiable
        reward; the work is not checked)."""
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
        rewards = np.zeros(len(prompts))
        for i, (p, c) in enumerate(zip(prompts, completions)):
            a, b = p.rstrip("=").split("+")
            rewards[i] = float(cls.answer(c) == int(a) + int(b))
        return rewards

    def step_labels(self, prompt: str, completion: str) -> tuple[list[str], list[bool]]:
        """The completion cut into its steps (each written column with the "," or "~" before
        it, then the answer; text the format does not know is left out), and whether each
        step is right by the exact checker: a column must
        be the true column of its place (the operands' digits, the carry truly due, their
        sum), the answer the true sum. The labels of a process reward model (Lightman et al.
        2023, arXiv 2305.20050), here exact rather than annotated (chapter 09)."""
        a, b = map(int, prompt.rstrip("=").split("+"))
        width = max(len(str(a)), len(str(b)))
        xs, ys = [int(d) for d in str(a).zfill(width)[::-1]], [int(d) for d in str(b).zfill(width)[::-1]]
        truth, carry = [], 0
        for x, y in zip(xs, ys):
            truth.append(column(x, y, carry, x + y + carry))
            carry = (x + y + carry) // 10
        steps, labels, place = [], [], 0
        for match in re.finditer(rf"([,{REPAIR}]?)({_COLUMN})|{ANSWER}(\d+)", completion):
            if match.group(3) is not None:
                right = int(match.group(3)) == a + b
            else:
                place += match.group(1) == ","
                right = place < len(truth) and match.group(2) == truth[place]
            steps.append(match.group(0))
            labels.append(bool(right))
        return steps, labels

    @staticmethod
    def well_formed(completions: list[str]) -> np.ndarray:
        """1.0 where the completion is written work (at least one column) then ">" and a
        number, else 0.0 (R1-Zero's format reward)."""
        return np.array([float(_WELL_FORMED.fullmatch(c.strip()) is not None) for c in completions])
