"""GSM8K's exact final-answer checker, on rows written for this test (the Hub is not reachable)."""
import json
from decimal import Decimal

import pytest

from survey_lib.data_files import HubUnavailableError
from survey_lib.world.chat import PromptDataError
from survey_lib.world.gsm8k import GSM8KTask, final_answer

ROWS = [
    {"question": "Ann has 3 boxes of 400 pens. How many pens?", "answer": "3 * 400 = <<3*400=1200>>1200\n#### 1,200"},
    {"question": "A pie costs $2.50. What do 3 pies cost?", "answer": "3 * 2.5 = 7.5\n#### 7.5"},
]


@pytest.fixture
def task(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return GSM8KTask.from_source(path)


@pytest.mark.parametrize("completion, expected", [
    ("3 boxes of 400 is 1200 pens.\n#### 1200", Decimal(1200)),
    ("#### 1,200.", Decimal(1200)),
    ("so $1200.00 in all", Decimal(1200)),
    ("The answer is \\boxed{1200}.", Decimal(1200)),
    ("#### 12 then I changed my mind: 1200", Decimal(12)),  # the marker wins over a later number
    ("first 5, then -3", Decimal(-3)),
    ("no number here", None),
    ("#### unsure", None),
])
def test_final_answer_reads_the_marker_then_boxed_then_the_last_number(completion, expected):
    assert final_answer(completion) == expected


def test_verify_scores_exact_numeric_equality(task):
    prompts = task.prompts
    assert task.answers == (Decimal(1200), Decimal("7.5"))
    assert prompts[0][0]["role"] == "user" and "####" in prompts[0][0]["content"]
    rewards = task.verify(prompts * 2, ["#### 1200", "#### $7.50", "#### 1201", "it is 7"])
    assert rewards.tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(KeyError, match="not one of this task's problems"):
        task.verify(["What is 2+2?"], ["4"])


def test_bad_rows_and_an_offline_hub_id_say_what_to_do(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    with pytest.raises(PromptDataError, match="ending '#### <number>'"):
        GSM8KTask.from_source(path)
    path.write_text(json.dumps({"prompt": "2+2?"}) + "\n")
    with pytest.raises(PromptDataError, match="needs 'question' and 'answer'"):
        GSM8KTask.from_source(path)
    with pytest.raises(HubUnavailableError, match="local .jsonl of GSM8K rows"):
        GSM8KTask.from_source("openai/gsm8k")


def test_profiles_name_their_verifiable_task():
    from survey_lib.profiles import get_profile
    from survey_lib.world.column_addition import ColumnAdditionTask

    assert isinstance(get_profile("tiny").verifiable_task(), ColumnAdditionTask)
    assert get_profile("colab").verifiable == get_profile("gpu").verifiable == "openai/gsm8k"
    with pytest.raises(ValueError, match="small profile has no verifiable task yet"):
        get_profile("small").verifiable_task()


def test_the_tiny_reasoning_models_keep_the_response_limit_their_work_needs():
    from survey_lib.profiles import get_profile
    from survey_lib.world.column_addition import ColumnAdditionTask

    tiny = get_profile("tiny")
    for which in ("reasoning", "reasoning-base"):
        model, _ = tiny.load(which)
        assert model.generation_config.max_new_tokens > ColumnAdditionTask().max_response_length
    assert tiny.load("text")[0].generation_config.max_new_tokens == tiny.max_new_tokens
    with pytest.raises(ValueError, match="small profile has no reasoning-base model"):
        get_profile("small").load("reasoning-base")
