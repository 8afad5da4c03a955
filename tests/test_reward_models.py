import math
from dataclasses import replace

import bitsandbytes as bnb
import numpy as np
import pytest
import torch

from survey_lib import reward_models
from survey_lib.models import LoraSettings, ModelSettings, load_model
from survey_lib.preference_data import PreferenceDataError
from survey_lib.reward_models import RewardConfig, RewardEnsemble, RewardModel, bradley_terry_loss, train_reward_model
from survey_lib.sequences import encode_completion
from survey_lib.world.text import NEGATIVE, POSITIVE

# a task the tiny model can learn in a few dozen steps: praise beats criticism
ROWS = [
    {"prompt": p, "chosen": f" was {good} .", "rejected": f" was {bad} ."}
    for p in ("the movie", "the plot", "the music", "this film")
    for good, bad in zip(POSITIVE, NEGATIVE)
]
FAST = RewardConfig(epochs=1, min_steps=40, batch_size=8, learning_rate=3e-3)


def reward_head(seed=0):
    torch.manual_seed(seed)
    return load_model("tiny-text-lm", head="reward")


def fit(head, rows, config):
    model, tok = head
    return train_reward_model(model, config, rows, tokenizer=tok)


def test_bradley_terry_loss_closed_form_and_gradient():
    chosen = torch.tensor([2.0, 0.0, -1.0], requires_grad=True)
    rejected = torch.tensor([1.0, 0.5, -1.0])
    loss = bradley_terry_loss(chosen, rejected)
    expected = np.mean([math.log1p(math.exp(-1.0)), math.log1p(math.exp(0.5)), math.log(2)])
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # d/dr_c of -log sigmoid(r_c - r_r) / n is -sigmoid(r_r - r_c) / n: chosen goes up
    gap = (chosen - rejected).detach()
    assert torch.allclose(chosen.grad, -torch.sigmoid(-gap) / 3)
    with_margin = bradley_terry_loss(chosen, rejected, torch.tensor([1.0, 1.0, 1.0]))
    assert with_margin.item() == pytest.approx(bradley_terry_loss(chosen - 1, rejected).item())
    with pytest.raises(ValueError, match="differ in shape"):
        bradley_terry_loss(chosen, rejected[:2])


def test_loss_and_tokens_match_trl_reward_trainer(tmp_path):
    from datasets import Dataset
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    model, tok = reward_head()
    rows = [{**r, "margin": float(i % 3) / 2} for i, r in enumerate(ROWS[:8])]
    args = TRLRewardConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, use_cpu=True, report_to="none", max_length=64)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    trl_rows = trainer.train_dataset
    # the same token ids: TRL joins prompt + completion as text, we join token ids
    for row, trl_row in zip(rows, trl_rows):
        assert encode_completion(tok, row["prompt"], row["chosen"])[0] == trl_row["chosen_ids"]
        assert encode_completion(tok, row["prompt"], row["rejected"])[0] == trl_row["rejected_ids"]
    batch = next(iter(trainer.get_train_dataloader()))
    model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, dict(batch))
        order = [trl_rows[i]["chosen_ids"] for i in range(8)]  # the dataloader may shuffle: match by ids
        ids = [r.tolist() for r in batch["input_ids"]]
        chosen_ids = [[t for t, m in zip(ids[k], batch["attention_mask"][k]) if m] for k in range(8)]
        index = [order.index(c) for c in chosen_ids]
        scorer = RewardModel(model, tok)
        ours = bradley_terry_loss(
            scorer.forward([trl_rows[i]["chosen_ids"] for i in index]),
            scorer.forward([trl_rows[i]["rejected_ids"] for i in index]),
            torch.tensor([rows[i]["margin"] for i in index]),
        )
    assert ours.item() == pytest.approx(trl_loss.item(), abs=1e-5)


def test_training_learns_the_preference_and_generalises():
    model, tok = reward_head()
    train, held_out = ROWS[:24], ROWS[24:]
    rm = train_reward_model(model, FAST, train, tokenizer=tok)
    assert rm.history[-1]["loss"] < rm.history[0]["loss"] / 2
    chosen, rejected = rm.score_rows(held_out)
    assert (chosen > rejected).all()
    # plain and space-joined completions score the same: prompt and completion are tokenized apart
    assert np.allclose(rm(["the movie"], ["was great ."]), rm(["the movie"], [" was great ."]))


def test_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    config = replace(FAST, output_dir=str(tmp_path / "ckpt"), save_steps=10)
    straight = fit(reward_head(), ROWS, replace(config, output_dir=None))

    calls = {"n": 0}
    real_loss = reward_models.bradley_terry_loss

    def crash_at_step_25(*args):
        calls["n"] += 1
        if calls["n"] == 26:
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(reward_models, "bradley_terry_loss", crash_at_step_25)
    with pytest.raises(KeyboardInterrupt):
        fit(reward_head(), ROWS, config)
    monkeypatch.setattr(reward_models, "bradley_terry_loss", real_loss)
    resumed = fit(reward_head(seed=1), ROWS, config)  # different init: the checkpoint must win
    assert resumed.history[20]["step"] == 20 and len(resumed.history) == len(straight.history)
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="other data or settings"):
        fit(reward_head(), ROWS[:20], config)


def test_long_sequences_are_truncated_with_a_warning_naming_the_rows():
    model, tok = reward_head()
    rows = ROWS[:4] + [{"prompt": "the movie", "chosen": " was good" + " and it was good" * 20 + " .", "rejected": " was bad ."}]
    with pytest.warns(UserWarning, match=r"1 chosen sequences longer than 64 tokens .* \(rows \[4\]\)"):
        rm = train_reward_model(model, replace(FAST, min_steps=1), rows, tokenizer=tok)
    with pytest.warns(UserWarning, match=r"rows \[1\]"):
        assert np.isfinite(rm(["the movie"] * 2, [" was good .", rows[4]["chosen"]])).all()


def test_non_finite_scores_name_the_rows():
    model, tok = reward_head()
    with torch.no_grad():
        model.score.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"rows \[0, 1\]"):
        RewardModel(model, tok)(["the movie", "the plot"], ["was good .", "was bad ."])


def test_margins_must_be_on_every_row_or_none():
    rows = [dict(ROWS[0], margin=1.0), ROWS[1]]
    with pytest.raises(PreferenceDataError, match="row 1 has no 'margin'"):
        fit(reward_head(), rows, FAST)


@pytest.mark.parametrize("field, value", [("learning_rate", 0.0), ("batch_size", 0), ("epochs", 1.5), ("max_length", 1),
                                          ("max_grad_norm", 0.0)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises((ValueError, TypeError), match=field):
        RewardConfig(**{field: value})


def test_saved_reward_model_reloads_with_the_same_scores(tmp_path):
    rm = fit(reward_head(), ROWS, replace(FAST, min_steps=5))
    rm.save_pretrained(tmp_path / "rm")
    again = RewardModel.from_pretrained(tmp_path / "rm")
    prompts, completions = ["the movie", "the plot"], ["was great .", "was dull ."]
    assert np.allclose(rm(prompts, completions), again(prompts, completions), atol=1e-6)


def test_conversational_rows_train_through_the_chat_template():
    user = lambda text: [{"role": "user", "content": text}]  # noqa: E731
    reply = lambda text: [{"role": "assistant", "content": text}]  # noqa: E731
    model, tok = reward_head()
    rows = [{"prompt": user(r["prompt"]), "chosen": reply(r["chosen"].strip()), "rejected": reply(r["rejected"].strip())} for r in ROWS]
    assert encode_completion(tok, rows[0]["prompt"], rows[0]["chosen"])[0][:2] == tok.convert_tokens_to_ids(["<|user|>", "the"])
    rm = train_reward_model(model, FAST, rows, tokenizer=tok)
    chosen, rejected = rm.score_rows(rows)
    assert (chosen > rejected).mean() > 0.9


def test_ensemble_returns_the_members_mean_and_spread():
    members = [lambda p, c, k=k: np.array([k, 2.0 * k]) for k in range(3)]
    ensemble = RewardEnsemble(members)
    mean, std = ensemble.mean_and_std(["a", "b"], ["x", "y"])
    assert np.allclose(mean, [1, 2]) and np.allclose(std, [np.std([0, 1, 2]), np.std([0, 2, 4])])
    assert np.allclose(ensemble(["a", "b"], ["x", "y"]), mean)
    with pytest.raises(ValueError, match="at least one member"):
        RewardEnsemble([])


def test_qlora_reward_model_trains_only_adapters_and_head():
    settings = ModelSettings(quantization="nf4", lora=LoraSettings(r=4, alpha=8, dropout=0.0), device="cpu")
    model, tok = load_model("tiny-text-lm", settings, head="reward")
    linears = [m for n, m in model.named_modules() if n.endswith("q_proj.base_layer")]
    assert linears and isinstance(linears[0], bnb.nn.Linear4bit)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or ".score." in n for n in trainable)
    assert any(".score." in n for n in trainable)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    rm = train_reward_model(model, replace(FAST, min_steps=5), ROWS, tokenizer=tok)
    after = dict(rm.model.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in frozen.items())
    assert any(not torch.equal(after[n], p) for n, p in before.items() if ".score." in n)
    assert np.isfinite(rm(["the movie"], ["was good ."])).all()


@pytest.mark.parametrize("max_grad_norm", [1.0, None])
def test_every_step_clips_the_gradient_norm_as_configured(monkeypatch, max_grad_norm):
    """TRL's default, max_grad_norm = 1.0: each optimiser step first clips the global gradient
    norm; None leaves the gradient alone."""
    clips, clip = [], torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm, **k: clips.append(max_norm) or clip(params, max_norm, **k))
    rm = fit(reward_head(), ROWS, replace(FAST, min_steps=3, epochs=1, max_grad_norm=max_grad_norm))
    assert clips == ([1.0] * len(rm.history) if max_grad_norm else [])


# ----- pointwise: labelled single responses (chapter 09's outcome and process reward models)


def test_pointwise_loss_is_the_binary_cross_entropy_of_the_score():
    scores, labels = torch.tensor([2.0, -1.0, 0.0]), torch.tensor([True, False, False])
    expected = np.mean([math.log1p(math.exp(-2.0)), math.log1p(math.exp(-1.0)), math.log(2)])
    assert reward_models.pointwise_loss(scores, labels).item() == pytest.approx(expected, rel=1e-6)


def test_unpaired_rows_train_a_pointwise_model_that_scores_good_above_bad():
    rows = [{"prompt": r["prompt"], "completion": r[side], "label": side == "chosen"} for r in ROWS for side in ("chosen", "rejected")]
    model = fit(reward_head(), rows, FAST)
    scores = model([r["prompt"] for r in rows], [r["completion"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    assert ((scores > 0) == labels).mean() > 0.9 and model.history[-1]["accuracy"] > 0.9
    with pytest.raises(PreferenceDataError, match="row 0: 'label' must be True"):
        fit(reward_head(), [{**rows[0], "label": 1}], FAST)


# ----- process reward models (chapter 09)


def _stepwise_rows(n: int, seed: int = 0):
    from survey_lib.world.column_addition import ColumnAdditionTask

    task = ColumnAdditionTask(shortcut_rate=0.0, forget_carry_rate=0.5)
    rows = []
    for prompt, completion in task.corpus(n, np.random.default_rng(seed)):
        steps, labels = task.step_labels(prompt, completion)
        rows.append({"prompt": prompt, "completions": steps, "labels": labels})
    return rows


def test_a_step_is_scored_at_its_last_token_as_the_prefix_alone_would_be():
    """One pass over the whole solution gives at each step's end the score of a pass over the
    solution cut there (the model is causal), and the cut is where the step ends."""
    model, tok = load_model("tiny-columns-lm", head="reward")
    prm = reward_models.ProcessRewardModel(model, tok)
    row = _stepwise_rows(1, seed=3)[0]
    (sequence,), (ends,) = prm.encode([row["prompt"]], [row["completions"]])
    whole = prm.step_scores([row["prompt"]], [row["completions"]])[0]
    for k, end in enumerate(ends):
        assert tok.decode(sequence[: end + 1]) == row["prompt"] + "".join(row["completions"][: k + 1])
        with torch.no_grad():
            alone = prm.position_scores([sequence[: end + 1]])[0, -1].item()
        assert whole[k] == pytest.approx(alone, abs=1e-5)


def test_a_process_reward_model_learns_which_steps_are_wrong():
    model, tok = load_model("tiny-columns-lm", head="reward")
    rows = _stepwise_rows(256)
    prm = reward_models.train_process_reward_model(model, RewardConfig(epochs=3, batch_size=32, learning_rate=1e-3),
                                                   rows, tokenizer=tok)
    held = _stepwise_rows(128, seed=1)
    scores = prm.step_scores([r["prompt"] for r in held], [r["completions"] for r in held])
    predicted, labels = np.concatenate(scores) > 0, np.concatenate([r["labels"] for r in held])
    assert (predicted == labels).mean() > 0.85 and (~predicted[~labels]).mean() > 0.5  # finds most wrong steps
    worst = prm.score([r["prompt"] for r in held], [r["completions"] for r in held])
    assert worst[np.array([all(r["labels"]) for r in held])].mean() > worst[np.array([not all(r["labels"]) for r in held])].mean()
    with pytest.raises(PreferenceDataError, match="row 0: a stepwise row"):
        reward_models.train_process_reward_model(model, None, [{"prompt": "1+1=", "completions": ["1+1=2"]}], tokenizer=tok)
