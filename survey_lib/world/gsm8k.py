"""Grade-school math (GSM8K, Cobbe et al. 2021, arXiv 2110.14168) with an exact final-answer
checker: the verifiable task of the `colab` and `gpu` profiles.

Defined for the Hub profiles (issue 14) and used by the reasoning chapter (RL with verifiable
rewards, as in DeepSeekMath's GRPO, 2402.03300). A GSM8K row is {"question", "answer"}; its
reference solution ends with "#### <number>". The prompt asks the model to end the same way,
and the reward is 1.0 exactly when the model's final answer equals the reference's as a
number ("1,200", "$1200" and "1200.00" all equal 1200).

The model's final answer is, in this order: the number after its last "####", the number in
its last \\boxed{...}, or else its last number. Anything else scores 0.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from ..data_files import load_rows
from .chat import PromptDataError

GSM8K = "openai/gsm8k"
INSTRUCTION = "Solve the problem step by step, then give the final answer on its own line as: #### <number>"
NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\$?\.\d+")
MARKER = r"####\s*([^\n]*)"
"""What follows "####" on its line: GSM8K's reference answers, and the answer the prompt asks for."""


def to_number(text: str) -> Decimal | None:
    """The number `text` writes ("1,200", "$3.50", "-4", "7."), or None."""
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def final_answer(completion: str) -> Decimal | None:
    """The completion's final answer (see the module docstring), or None if it gives none."""
    for marker in (MARKER, r"\\boxed\{([^{}]*)\}"):
        found = re.findall(marker, completion)
        if found:
            numbers = NUMBER.findall(found[-1])
            return to_number(numbers[0]) if numbers else None
    numbers = NUMBER.findall(completion)
    return to_number(numbers[-1]) if numbers else None


def as_prompt(question: str) -> list[dict]:
    return [{"role": "user", "content": f"{question.strip()}\n\n{INSTRUCTION}"}]


@dataclass
class GSM8KTask:
    """GSM8K problems as conversational prompts, with the exact checker `verify`."""

    questions: tuple[str, ...]
    answers: tuple[Decimal, ...]

    @classmethod
    def from_source(cls, name_or_path=GSM8K, *, split: str = "test", limit: int | None = None) -> GSM8KTask:
        """Rows {"question", "answer"} from the Hub ("openai/gsm8k", its "main" subset) or a
        local file or directory in the same format."""
        rows = load_rows(name_or_path, split, limit, subset="main" if os.fspath(name_or_path) == GSM8K else None,
                         offline_hint="pass a local .jsonl of GSM8K rows or use the tiny profile's arithmetic task")
        questions, answers = [], []
        for i, row in enumerate(rows):
            if "question" not in row or "answer" not in row:
                raise PromptDataError(f"{os.fspath(name_or_path)}: row {i} needs 'question' and 'answer', has {sorted(row)}")
            reference = re.findall(MARKER, row["answer"])
            value = to_number(reference[-1]) if reference else None
            if not row["question"].strip() or value is None:
                raise PromptDataError(f"{os.fspath(name_or_path)}: row {i} needs a question and an answer ending "
                                      f"'#### <number>'; got answer {row['answer'][-60:]!r}")
            questions.append(row["question"].strip())
            answers.append(value)
        if not questions:
            raise PromptDataError(f"{os.fspath(name_or_path)} has no rows")
        return cls(tuple(questions), tuple(answers))

    @property
    def prompts(self) -> list[list[dict]]:
        return [as_prompt(q) for q in self.questions]

    def verify(self, prompts: list, completions: list[str]) -> np.ndarray:
        """1.0 where the completion's final answer equals the problem's, else 0.0."""
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
        answer_of = {as_prompt(q)[0]["content"]: a for q, a in zip(self.questions, self.answers)}
        rewards = np.zeros(len(prompts))
        for i, (p, c) in enumerate(zip(prompts, completions)):
            content = p if isinstance(p, str) else p[-1]["content"]
            if content not in answer_of:
                raise KeyError(f"prompt {i} is not one of this task's problems: {content[:80]!r}")
            rewards[i] = float(final_answer(c) == answer_of[content])
        return rewards
