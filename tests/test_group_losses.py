"""survey_lib.group_losses and the group-policy family in train_group_policy (chapters 04 and
09): each loss type and importance-sampling level equal to TRL's GRPOTrainer on the same
batch (value and gradient), hand-computed values for what TRL lacks (REINFORCE++, Kimi's
length reward), DAPO's overlong penalty against TRL's, dynamic sampling, and bad input."""
import math
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from survey_lib.generation import Rollouts, generate_rollouts
from survey_lib.group_losses import (
    LOSS_TYPES,
    group_advantages,
    group_policy_loss,
    informative_groups,
    kimi_length_reward,
    overlong_penalty,
    reinforce_pp_advantages,
)
from survey_lib.models import load_model
from survey_lib.online_rl import GROUP_RECIPES, GroupConfig, group_recipe, token_logprobs, train_group_policy
from survey_lib.world.text import TextWorld

PROMPTS = list(TextWorld(seed=0).prompts)

pytestmark = pytest.mark.usefixtures("one_thread")


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def batch(seed: int = 0, rows: int = 6, length: int = 5):
    """Log-probabilities of a policy that has moved from pi_old (ratios up to e^+-0.4, so
    some clip), a reference, advantages of both signs, and responses of 2 to 5 tokens."""
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(rows, length, generator=g, dtype=torch.float64) * 3 - 0.1
    new = old + (torch.rand(rows, length, generator=g, dtype=torch.float64) - 0.5) * 0.8
    ref = old + (torch.rand(rows, length, generator=g, dtype=torch.float64) - 0.5) * 0.6
    advantages = torch.randn(rows, generator=g, dtype=torch.float64)
    lengths = torch.tensor([2, 5, 3, 4, 5, 2][:rows])
    mask = (torch.arange(length)[None, :] < lengths[:, None]).double()
    return new, old, ref, advantages, mask


# ------------------------------------------------------------------ against TRL


class _OneProcess:
    """What GRPOTrainer._compute_loss asks of accelerate, for one process."""

    num_processes, sync_gradients = 1, True

    def gather(self, x):
        return x

    gather_for_metrics = gather

    def reduce(self, x, reduction="sum"):
        return x


def trl_loss(new, old, ref, advantages, mask, *, loss_type, epsilon, epsilon_high, level, beta, max_length):
    """TRL's GRPOTrainer._compute_loss on this batch: the trainer's own code, with the
    model's log-probabilities handed in instead of computed."""
    from trl import GRPOTrainer

    trainer = SimpleNamespace(
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level=level, beta=beta,
        loss_type=loss_type, epsilon_low=epsilon, epsilon_high=epsilon_high, use_vllm=False,
        model=SimpleNamespace(training=True), current_gradient_accumulation_steps=1, max_completion_length=max_length,
        accelerator=_OneProcess(), _entropy_bonus_enabled=False, aux_loss_enabled=False,
        _metrics={"train": defaultdict(list)},
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        _get_per_token_logps_and_entropies=lambda *args, **kwargs: (new, torch.zeros_like(new), None),
    )
    rows, length = mask.shape
    inputs = {
        "prompt_ids": torch.zeros(rows, 1, dtype=torch.long), "prompt_mask": torch.ones(rows, 1, dtype=torch.long),
        "completion_ids": torch.zeros(rows, length, dtype=torch.long), "completion_mask": mask,
        "advantages": advantages, "old_per_token_logps": old, "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum(),
    }
    return GRPOTrainer._compute_loss(trainer, None, inputs)


CASES = [(loss_type, "token", beta) for loss_type in LOSS_TYPES for beta in (0.0, 0.1)] + [
    ("grpo", "sequence", 0.0), ("grpo", "sequence", 0.1)]


@pytest.mark.parametrize("loss_type, level, beta", CASES)
def test_the_loss_and_its_gradient_equal_trls_grpo_trainer(loss_type, level, beta):
    epsilon, epsilon_high = (0.2, 1.3 if loss_type == "cispo" else 0.28)  # a cap that some weights pass
    if level == "sequence":  # GSPO's clip range, narrow enough that sequence weights clip
        epsilon, epsilon_high = 3e-2, 4e-2
    for seed in range(3):
        new, old, ref, advantages, mask = batch(seed)
        ours_in, theirs_in = new.clone().requires_grad_(), new.clone().requires_grad_()
        settings = dict(loss_type=loss_type, epsilon=epsilon, epsilon_high=epsilon_high)
        ours, clipped = group_policy_loss(ours_in, old, ref, advantages, mask, importance_sampling_level=level,
                                          beta=beta, max_completion_length=8, **settings)
        theirs = trl_loss(theirs_in, old, ref, advantages, mask, level=level, beta=beta, max_length=8, **settings)
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
        ours.backward()
        theirs.backward()
        torch.testing.assert_close(ours_in.grad, theirs_in.grad, rtol=1e-12, atol=1e-12)
        assert 0.0 <= clipped.item() <= 1.0
    assert clipped.item() > 0  # the batches do reach the clip


def test_trls_batch_scaled_advantage():
    """TRL's scale_rewards="batch": the group mean subtracted, divided by the batch's std."""
    r = np.array([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])
    centred = r - r.reshape(2, 3).mean(1).repeat(3)
    torch.testing.assert_close(group_advantages(t(r), 3, scale="batch"), t(centred / (r.std(ddof=1) + 1e-4)))


def test_the_overlong_penalty_equals_trls_soft_punishment():
    from trl.rewards import get_soft_overlong_punishment

    lengths = list(range(0, 31))
    theirs = get_soft_overlong_punishment(max_completion_len=24, soft_punish_cache=8)([[1] * n for n in lengths])
    ours = overlong_penalty(torch.tensor(lengths), 24, 8)
    torch.testing.assert_close(ours, torch.tensor(theirs, dtype=torch.float32))
    assert ours[16].item() == 0.0 and ours[20].item() == -0.5 and ours[24].item() == -1.0


# ------------------------------------------------------------------ by hand


def test_dr_grpo_weighs_every_token_alike_and_grpo_does_not():
    """One right answer of 1 token and one wrong one of 4 (A = +1, -1), on-policy. GRPO's
    per-response mean gives each wrong token a quarter of the right token's weight, so the
    long wrong answer is pushed down less per token (the length bias Dr. GRPO removes);
    Dr. GRPO's gradient is A / (B * L_max) on every token."""
    old = torch.full((2, 4), -1.0, dtype=torch.float64)
    mask = t([[1, 0, 0, 0], [1, 1, 1, 1]])
    for loss_type, expected in (("grpo", [[-0.5, 0, 0, 0], [0.125] * 4]), ("dr_grpo", [[-1 / 16, 0, 0, 0], [1 / 16] * 4])):
        new = old.clone().requires_grad_()
        loss, _ = group_policy_loss(new, old, None, t([1.0, -1.0]), mask, loss_type=loss_type, max_completion_length=8)
        loss.backward()
        torch.testing.assert_close(new.grad, t(expected))


def test_clip_higher_lets_a_rising_token_grow_further():
    """A token with A > 0 whose weight has reached 1.25: the symmetric clip at 0.2 stops its
    gradient, DAPO's clip-higher at 0.28 does not."""
    old = torch.zeros(1, 1, dtype=torch.float64)
    for epsilon_high, grows in ((0.2, False), (0.28, True)):
        new = torch.full((1, 1), math.log(1.25), dtype=torch.float64, requires_grad=True)
        loss, clipped = group_policy_loss(new, old, None, t([1.0]), torch.ones(1, 1, dtype=torch.float64),
                                          loss_type="dapo", epsilon=0.2, epsilon_high=epsilon_high)
        loss.backward()
        assert (new.grad.abs().item() > 0) == grows and clipped.item() == (0.0 if grows else 1.0)


def test_cispo_keeps_a_gradient_on_tokens_ppo_would_clip():
    """Weight 2 (above PPO's clip): CISPO's loss is -min(2, cap) * A * log pi with the weight
    detached, so d loss / d log pi = -min(2, cap) * A / tokens."""
    old = torch.zeros(1, 2, dtype=torch.float64)
    new = torch.full((1, 2), math.log(2.0), dtype=torch.float64, requires_grad=True)
    loss, clipped = group_policy_loss(new, old, None, t([0.5]), torch.ones(1, 2, dtype=torch.float64),
                                      loss_type="cispo", epsilon_high=1.5)
    loss.backward()
    torch.testing.assert_close(new.grad, t([[-1.5 * 0.5 / 2] * 2]))
    assert loss.item() == pytest.approx(-1.5 * 0.5 * math.log(2.0)) and clipped.item() == 1.0


def test_gspo_shares_one_length_normalised_weight_per_response():
    """Token log-ratios 0.1 and 0.3 give one weight exp(0.2) for both tokens, clipped as one."""
    old = torch.zeros(1, 2, dtype=torch.float64)
    new = t([[0.1, 0.3]]).requires_grad_()
    loss, clipped = group_policy_loss(new, old, None, t([1.0]), torch.ones(1, 2, dtype=torch.float64),
                                      importance_sampling_level="sequence", epsilon=0.5)
    assert loss.item() == pytest.approx(-math.exp(0.2))
    loss.backward()  # d exp(mean) / d each = exp(0.2) / 2
    torch.testing.assert_close(new.grad, t([[-math.exp(0.2) / 2] * 2]))
    assert clipped.item() == 0.0


def test_reinforce_pp_advantage_by_hand():
    """Two groups of two, k1 KL 0.5 on every token, beta 0.2. Centred rewards: +-0.5 and
    +-1. Row 0 (two tokens): returns 0.5 - 0.2 * (1.0, 0.5) = (0.3, 0.4); row 1 (one token):
    -0.5 - 0.1 = -0.6; row 2: 1 - 0.1 = 0.9; row 3: -1.1. Then one mean and std over the
    five tokens."""
    rewards = t([2.0, 1.0, 3.0, 1.0])
    mask = t([[1, 1], [1, 0], [1, 0], [1, 0]])
    kl = torch.full((4, 2), 0.5, dtype=torch.float64)
    returns = np.array([0.3, 0.4, -0.6, 0.9, -1.1])
    expected = (returns - returns.mean()) / returns.std()
    got = reinforce_pp_advantages(rewards, kl, mask, 2, 0.2)
    torch.testing.assert_close(got[mask.bool()], t(expected), rtol=1e-6, atol=1e-6)
    assert (got[~mask.bool()] == 0).all()


def test_kimi_length_reward_by_hand():
    """Group of lengths 10, 20, 30 (min 10, max 30): lambda = 0.5, 0, -0.5. Correct ones get
    lambda, wrong ones min(0, lambda). A group of equal lengths gets 0."""
    got = kimi_length_reward(torch.tensor([1, 0, 1, 1, 0, 0]), torch.tensor([10, 10, 30, 7, 7, 7]), 3)
    torch.testing.assert_close(got, torch.tensor([0.5, 0.0, -0.5, 0.0, 0.0, 0.0]))
    got = kimi_length_reward(torch.tensor([0, 1, 0]), torch.tensor([10, 20, 30]), 3)
    torch.testing.assert_close(got, torch.tensor([0.0, 0.0, -0.5]))


def test_informative_groups_are_those_with_unequal_rewards():
    assert informative_groups(t([1, 1, 0, 1, 0, 0, 1, 1]), 2).tolist() == [False, True, False, False]


# ------------------------------------------------------------------ configs and bad input


@pytest.mark.parametrize("changes, name", [
    ({"loss_type": "ppo"}, "loss_type"),
    ({"importance_sampling_level": "word"}, "importance_sampling_level"),
    ({"scale_rewards": True}, "scale_rewards"),
    ({"epsilon": 0.2, "epsilon_high": 0.1}, "epsilon_high"),
    ({"loss_type": "cispo"}, "epsilon_high"),
    ({"loss_type": "cispo", "epsilon_high": 0.5}, "epsilon_high"),
    ({"overlong_buffer_len": 10, "max_new_tokens": 8}, "overlong_buffer_len"),
    ({"max_sampling_rounds": 0}, "max_sampling_rounds"),
    ({"length_reward_coef": -0.1}, "length_reward_coef"),
])
def test_bad_settings_name_the_parameter(changes, name):
    with pytest.raises(ValueError, match=name):
        GroupConfig(**changes)


def test_every_recipe_builds_and_an_unknown_one_lists_them():
    for name in GROUP_RECIPES:
        method, config = group_recipe(name, steps=3)
        assert config.steps == 3 and method in ("rloo", "grpo", "reinforce_pp")
    with pytest.raises(ValueError, match="'GRPO'"):
        group_recipe("PPO")


# ------------------------------------------------------------------ on the zoo


@pytest.fixture(scope="module")
def zoo():
    return load_model("tiny-text-lm")


def test_concatenated_rollouts_keep_each_rows_log_probabilities(zoo):
    """Two batches with prompts of different lengths, stacked: every row's token
    log-probabilities are those it had in its own batch."""
    model, tok = zoo
    torch.manual_seed(0)
    parts = [generate_rollouts(model, tok, ["the movie"] * 2, max_new_tokens=6),
             generate_rollouts(model, tok, ["i think the plot was", "the acting"], max_new_tokens=9)]
    joined = Rollouts.concatenate(parts, tok.pad_token_id)
    assert joined.completions == parts[0].completions + parts[1].completions
    with torch.no_grad():
        got = token_logprobs(model, joined, 1.0) * joined.response_mask
        for i, part in enumerate(parts):
            mine = token_logprobs(model, part, 1.0) * part.response_mask
            rows = got[2 * i : 2 * i + 2]
            torch.testing.assert_close(rows[:, : mine.shape[1]], mine, rtol=1e-5, atol=1e-5)
            assert (rows[:, mine.shape[1]:] == 0).all()


def test_dynamic_sampling_trains_only_on_groups_whose_rewards_differ(zoo, monkeypatch):
    """A reward that ties every group of the prompt "the movie" (always 0) and separates the
    others: every group trained on has unequal rewards, the batch is full, and the history
    counts every response generated."""
    import survey_lib.online_rl as online_rl

    model, tok = zoo
    generated, trained = [], []

    def reward(prompts, completions):
        generated.append(len(prompts))
        return np.array([0.0 if p == "the movie" else float(len(c.split())) for p, c in zip(prompts, completions)])

    def advantages(scores, k, **kwargs):
        trained.append(scores.view(-1, k))
        return group_advantages(scores, k, **kwargs)

    monkeypatch.setattr(online_rl, "group_advantages", advantages)
    prompts = ["the movie"] * 6 + PROMPTS[1:3]
    config = GroupConfig(steps=3, batch_size=8, num_generations=4, max_new_tokens=8, beta=0.0, dynamic_sampling=True)
    with pytest.warns(UserWarning, match="equal rewards"):  # some batch of 2 groups is all "the movie"
        history = train_group_policy(model, config, prompts, tokenizer=tok, reward=reward, method="grpo").history
    assert all(len(groups) == 2 and (groups.max(1).values > groups.min(1).values).all() for groups in trained)
    assert sum(h["generations"] for h in history) == sum(generated)  # every response the reward scored
    assert all(h["generations"] % 8 == 0 for h in history) and any(h["generations"] > 8 for h in history)
    assert all(math.isfinite(h["entropy"]) and h["entropy"] > 0 for h in history)


def test_dynamic_sampling_says_so_and_stops_when_nothing_differs(zoo):
    model, tok = zoo
    config = GroupConfig(steps=1, batch_size=8, num_generations=4, max_new_tokens=4, beta=0.0, dynamic_sampling=True,
                         max_sampling_rounds=2)
    with pytest.warns(UserWarning, match="equal rewards"), pytest.raises(RuntimeError, match="no group with unequal"):
        train_group_policy(model, config, PROMPTS, tokenizer=tok, reward=lambda p, c: np.ones(len(c)), method="grpo")


@pytest.mark.parametrize("name", list(GROUP_RECIPES))
def test_every_recipe_trains_on_the_zoo(zoo, name):
    model = load_model("tiny-text-lm")[0]
    before = [p.detach().clone() for p in model.parameters()]
    method, config = group_recipe(name, steps=2, batch_size=8, max_new_tokens=8, num_iterations=2,
                                  overlong_buffer_len=4 if name == "DAPO" else None)
    history = train_group_policy(model, config, PROMPTS, tokenizer=zoo[1], method=method,
                                 reward=lambda p, c: np.array([len(x.split()) for x in c], dtype=float)).history
    assert [h["step"] for h in history] == [0, 1]
    assert all(math.isfinite(h[k]) for h in history for k in ("loss", "entropy", "clipfrac", "score"))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_length_reward_switch_adds_kimis_reward_to_the_score(zoo, monkeypatch):
    """With length_reward_coef = 0.5, the scores GRPO normalises are the reward plus half of
    `kimi_length_reward` on the rollout's lengths, rightness read from the reward."""
    import survey_lib.online_rl as online_rl

    model, tok = zoo
    seen = []
    monkeypatch.setattr(online_rl, "group_advantages", lambda scores, k, **kw: seen.append(scores) or group_advantages(scores, k, **kw))
    rollouts_seen = []
    original = online_rl.OnlineRun.rollout

    def rollout(self):
        rollouts, scores = original(self)
        rollouts_seen.append((rollouts, scores))
        return rollouts, scores

    monkeypatch.setattr(online_rl.OnlineRun, "rollout", rollout)
    config = GroupConfig(steps=1, batch_size=8, num_generations=4, max_new_tokens=8, beta=0.0, length_reward_coef=0.5)
    reward = lambda p, c: np.array([float(len(x.split()) % 2) for x in c])  # right or wrong by parity
    train_group_policy(model, config, PROMPTS, tokenizer=tok, reward=reward, method="grpo")
    (rollouts, raw), = rollouts_seen
    lengths = rollouts.response_mask.sum(-1)
    torch.testing.assert_close(seen[0], raw + 0.5 * kimi_length_reward(raw > 0, lengths, 4))
