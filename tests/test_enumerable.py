import pytest
import torch

from survey_lib.world.enumerable import EnumerableTask, TabularPolicy, exact_kl


@pytest.fixture(scope="module")
def task():
    return EnumerableTask(vocab_size=3, length=4, seed=1)


def test_sequences_are_all_distinct(task):
    assert task.num_sequences == 3**4
    assert len({tuple(s) for s in task.sequences.tolist()}) == 3**4


def test_prefix_index_matches_brute_force(task):
    rows = []
    for seq in task.sequences.tolist():
        rows.append([sum(3**j for j in range(t)) + sum(d * 3 ** (t - 1 - i) for i, d in enumerate(seq[:t])) for t in range(4)])
    assert torch.equal(task.reference.prefix_index(task.sequences), torch.tensor(rows))


def test_reference_and_optimum_are_distributions(task):
    assert task.ref_logprobs().exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    for beta in (0.1, 1.0, 10.0):
        assert task.optimal_logprobs(beta).exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_optimum_is_pi_ref_tilted_by_reward(task):
    beta = 0.7
    ratio = task.optimal_logprobs(beta) - task.ref_logprobs()
    # log pi*/pi_ref = r / beta - log Z: affine in r with slope 1 / beta
    assert torch.allclose(ratio, task.rewards / beta - task.log_partition(beta), atol=1e-5)


def test_objective_identity_J_equals_beta_logZ_minus_beta_kl(task):
    beta = 0.5
    torch.manual_seed(0)
    policy = TabularPolicy(3, 4, torch.randn_like(task.reference.logits))
    lhs = task.objective(policy, beta).item()
    rhs = (beta * task.log_partition(beta)).item() - beta * task.kl_to_optimum(policy, beta)
    assert lhs == pytest.approx(rhs, abs=1e-5)


def test_optimum_summary_gives_beta_log_z_and_trades_reward_for_kl_as_beta_falls(task):
    summaries = {beta: task.optimum_summary(beta) for beta in (0.1, 1.0, 10.0)}
    for beta, s in summaries.items():  # J(pi*) = E*[r] - beta KL(pi* || pi_ref) = beta log Z
        assert s["expected_reward"] - beta * s["kl_to_reference"] == pytest.approx((beta * task.log_partition(beta)).item(), abs=1e-4)
    rewards = [summaries[b]["expected_reward"] for b in (10.0, 1.0, 0.1)]
    kls = [summaries[b]["kl_to_reference"] for b in (10.0, 1.0, 0.1)]
    assert rewards == sorted(rewards) and kls == sorted(kls)
    assert summaries[0.1]["expected_reward"] == pytest.approx(task.rewards.max().item(), abs=0.2)


def test_tabular_represents_any_distribution_exactly(task):
    beta = 0.5
    star = task.tabular(task.optimal_logprobs(beta))
    assert torch.allclose(star.sequence_logprobs(task.sequences), task.optimal_logprobs(beta), atol=1e-4)
    assert task.kl_to_optimum(star, beta) == pytest.approx(0.0, abs=1e-5)


def test_optimum_maximises_objective(task):
    beta = 0.5
    best = task.objective(task.tabular(task.optimal_logprobs(beta)), beta).item()
    assert best == pytest.approx((beta * task.log_partition(beta)).item(), abs=1e-4)
    torch.manual_seed(0)
    for _ in range(5):
        other = TabularPolicy(3, 4, task.reference.logits + 0.3 * torch.randn_like(task.reference.logits))
        assert task.objective(other, beta).item() < best


def test_exact_kl_matches_monte_carlo(task):
    torch.manual_seed(0)
    p = TabularPolicy(3, 4, torch.randn_like(task.reference.logits))
    exact = exact_kl(p.sequence_logprobs(task.sequences), task.ref_logprobs()).item()
    samples = p.sample(200_000, torch.Generator().manual_seed(0))
    with torch.no_grad():
        mc = (p.sequence_logprobs(samples) - task.reference.sequence_logprobs(samples)).mean().item()
    assert mc == pytest.approx(exact, rel=0.03, abs=0.01)


def test_sampling_follows_the_policy(task):
    samples = task.reference.sample(100_000, torch.Generator().manual_seed(0))
    index = (samples * (3 ** torch.arange(3, -1, -1))).sum(-1)
    freq = torch.bincount(index, minlength=81).float() / len(samples)
    assert torch.allclose(freq, task.ref_logprobs().exp(), atol=0.006)


def test_reward_of_matches_table(task):
    assert torch.equal(task.reward_of(task.sequences), task.rewards)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"vocab_size": 1}, "vocab_size"),
        ({"length": 0}, "length"),
        ({"reward": "nope"}, "'random', 'count'"),
        ({"ref_temperature": 0.0}, "ref_temperature"),
        ({"vocab_size": 50, "length": 5}, "too many"),
    ],
)
def test_bad_configuration_names_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EnumerableTask(**kwargs)


def test_wrong_type_is_rejected():
    with pytest.raises(TypeError, match="vocab_size"):
        EnumerableTask(vocab_size=3.5)
    with pytest.raises(ValueError, match="beta"):
        EnumerableTask().optimal_logprobs(0.0)


@pytest.mark.parametrize("keep", [1.0, 0.8])
def test_fit_policy_weights_each_beta_dpo_loss_by_its_own_pair(keep):
    """beta-DPO keeps (and permutes) a subset K of each direction's rows; fit_policy's loss is
    sum_{i in K} w_i loss_i * n / |K|, over the number of pairs n. Pair 4 is 50 nats from the others,
    so keep = 0.8 (4 of 5 rows) always drops it; the soft labels differ so a mismatch shows."""
    from survey_lib.enumerable_preferences import Pairs, fit_policy
    from survey_lib.preference_config import PreferenceConfig

    task, beta, alpha, momentum = EnumerableTask(vocab_size=3, length=3, seed=0), 0.5, 0.6, 0.9
    first, second = torch.tensor([0, 2, 4, 6, 8]), torch.tensor([1, 3, 5, 7, 9])
    prob_first = torch.tensor([0.9, 0.3, 0.6, 0.2, 0.7])
    ratio = torch.zeros(task.num_sequences)  # log pi / pi_ref of the starting policy
    ratio[first] = torch.tensor([0.3, -0.2, 0.5, 0.1, 50.0])
    init = task.tabular(torch.log_softmax(task.ref_logprobs() + ratio, 0))
    config = PreferenceConfig(loss="beta_dpo", beta=beta, beta_dpo_alpha=alpha, beta_dpo_keep=keep,
                              beta_dpo_momentum=momentum)
    _, trace = fit_policy(task, Pairs(first, second, prob_first), config, 1, init=init)

    log_ratio = (init.sequence_logprobs(task.sequences) - task.ref_logprobs()).detach().double()
    h = log_ratio[first] - log_ratio[second]
    n = len(first)
    kept = torch.arange(n) if keep == 1.0 else torch.arange(n - 1)
    mean, std, expected = 0.0, 0.0, 0.0
    for margin, w in ((h, prob_first.double()), (-h, 1 - prob_first.double())):
        mean = momentum * mean + (1 - momentum) * margin.mean().item()
        std = momentum * std + (1 - momentum) * margin.std().item()
        beta_batch = max(beta * (1 + alpha * (margin[kept].mean().item() - mean)), 1e-3)
        losses = -torch.nn.functional.logsigmoid(beta_batch * margin[kept])
        expected += (w[kept] * losses).sum().item() * n / len(kept) / n
    assert trace[0]["loss"] == pytest.approx(expected, rel=1e-4)
