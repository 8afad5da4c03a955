"""Preference learning on the enumerable task, where every answer is exact.

Defined for chapter 07 (each loss's distance to pi*) and chapter 08 (the analysis of DPO:
extremes under deterministic preferences, mass on unseen sequences, intransitive
preferences and self-play, online versus offline DPO).

Every sequence of the task can be listed, so a preference is a matrix P[i, j] =
P(y_i > y_j), a data set is a list of pairs with their probability of going either way,
and a policy's log-probabilities, KL divergences and objective are exact sums. The
losses are `survey_lib.preference_losses`, dispatched by `preference_config.LOSSES`
exactly as on the text world; only the policy differs (a `TabularPolicy`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from tqdm.auto import tqdm

from . import preference_losses as pl
from ._checks import check_range
from .dashboard import live_curves
from .preference_config import LOSSES, Batch, PreferenceConfig
from .world.enumerable import EnumerableTask, TabularPolicy, exact_kl


@dataclass
class Pairs:
    """Pairs of sequence indices and P(first > second); sampled hard labels are 0 or 1."""

    first: torch.Tensor
    second: torch.Tensor
    prob_first: torch.Tensor

    def __len__(self) -> int:
        return len(self.first)

    def covered(self, num_sequences: int) -> torch.Tensor:
        """Which sequences appear in at least one pair."""
        seen = torch.zeros(num_sequences, dtype=torch.bool)
        seen[self.first] = True
        seen[self.second] = True
        return seen


def bradley_terry_matrix(task: EnumerableTask, scale: float = 1.0) -> torch.Tensor:
    """P[i, j] = sigmoid((r_i - r_j) / scale): preferences that DPO's model assumes (with
    scale = 1 its optimum is exactly pi* of `task.optimal_logprobs(beta)`). Scale -> 0
    gives deterministic preferences (chapter 08, experiment a)."""
    check_range("scale", scale, 0, low_open=True)
    r = task.rewards
    return torch.sigmoid((r[:, None] - r[None, :]) / scale)


def all_pairs(preference: torch.Tensor) -> Pairs:
    """Every unordered pair i < j once, with soft labels P[i, j]: the population loss."""
    i, j = torch.triu_indices(len(preference), len(preference), offset=1)
    return Pairs(i, j, preference[i, j])


def sample_pairs(preference: torch.Tensor, n: int, logprobs: torch.Tensor | None = None, *,
                 generator: torch.Generator | None = None) -> Pairs:
    """n pairs of two independent draws from exp(`logprobs`) (uniform if None; equal draws
    are drawn again), each labelled by one Bernoulli(P[i, j]) annotator."""
    size = len(preference)
    probs = torch.ones(size) if logprobs is None else logprobs.exp()
    first, second = torch.multinomial(probs, n, replacement=True, generator=generator), torch.multinomial(
        probs, n, replacement=True, generator=generator)
    while (same := first == second).any():
        second[same] = torch.multinomial(probs, int(same.sum()), replacement=True, generator=generator)
    labels = (torch.rand(n, generator=generator) < preference[first, second]).float()
    return Pairs(first, second, labels)


def win_rates(preference: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
    """P(y > pi) = sum_y' pi(y') P[y, y'] for every sequence y."""
    return preference @ logprobs.exp()


def exploitability(preference: torch.Tensor, logprobs: torch.Tensor) -> float:
    """max_y P(y > pi) - 1/2: how much the best response beats pi. Zero exactly at a
    Nash equilibrium (von Neumann winner) of the symmetric preference game."""
    return (win_rates(preference, logprobs).max() - 0.5).item()


def fit_policy(task: EnumerableTask, pairs: Pairs, config: PreferenceConfig, steps: int, *,
               reference: torch.Tensor | None = None, init: TabularPolicy | None = None,
               progress: bool = False, live: bool = True) -> tuple[TabularPolicy, list[dict]]:
    """Train a tabular policy with `config.loss` on `pairs`, full batch, with Adam.

    Each pair counts both ways, weighted by its label: prob_first times the loss with
    `first` chosen, plus (1 - prob_first) times the loss with `second` chosen; for
    unpaired losses (KTO) the chosen side is desirable and KTO's KL term is the exact
    KL(pi || pi_ref). `reference` is log pi_ref over all sequences (default the task's;
    DNO and sDPO pass the previous policy's); `init` the starting policy (default pi_ref).
    Returns the policy and a trace of the loss and the exact KL to pi_ref per step, drawn
    as live curves in a notebook unless `live` is False (a caller drawing its own).
    """
    spec = LOSSES[config.loss]
    if spec.data not in ("pairs", "unpaired"):
        raise ValueError(f"fit_policy trains pair losses; {config.loss!r} needs {spec.data!r} data")
    ref = task.ref_logprobs() if reference is None else reference
    policy = task.new_policy() if init is None else TabularPolicy(task.vocab_size, task.length, init.logits.detach())
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    length = torch.full((len(pairs),), float(task.length))
    state, generator = pl.BetaDPOState(config.beta_dpo_momentum, beta=config.beta), torch.Generator().manual_seed(config.seed)
    trace, curves = [], live_curves(f"{config.loss} on the enumerable task") if live else None
    for _ in tqdm(range(steps), desc=config.loss, disable=not progress):
        logp = policy.sequence_logprobs(task.sequences)
        loss = 0.0
        for chosen, rejected, weight in ((pairs.first, pairs.second, pairs.prob_first),
                                         (pairs.second, pairs.first, 1 - pairs.prob_first)):
            keep = weight > 0
            c, r, w = chosen[keep], rejected[keep], weight[keep]
            batch = Batch(chosen=logp[c], rejected=logp[r], ref_chosen=ref[c], ref_rejected=ref[r],
                          chosen_lengths=length[: len(c)], rejected_lengths=length[: len(c)],
                          beta_dpo=state, generator=generator)
            if spec.data == "unpaired":
                kl = exact_kl(logp, ref).detach()
                both = torch.cat([c, r])
                batch = Batch(completion=logp[both], ref_completion=ref[both], kl=kl,
                              labels=torch.arange(len(both)) < len(c))
                w = torch.cat([w, w])
            losses = spec.compute(batch, config)
            if config.loss == "beta_dpo":
                # its filter returns the rows state.kept, shuffled; each keeps its own weight,
                # and the kept rows stand for the whole batch
                w = w[state.kept] * (len(w) / len(state.kept))
            loss = loss + (losses * w).sum() / len(pairs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        trace.append({"loss": loss.item(), "kl_to_ref": exact_kl(logp.detach(), ref).item()})
        if curves is not None:
            curves.update(trace, steps)
    return policy, trace


def fit_dro(task: EnumerableTask, tau: float, steps: int, *, learning_rate: float = 0.05,
            value_learning_rate: float = 0.05) -> tuple[TabularPolicy, float]:
    """DRO on single trajectories: every sequence once (uniform mu) with its reward, the
    policy and a scalar V trained jointly on `dro_loss`. Returns (policy, V); at the
    optimum V = tau log Z and the policy is pi* (chapter 07). In a notebook, the loss and V
    are drawn as live curves."""
    ref = task.ref_logprobs()
    policy, value = task.new_policy(), torch.zeros((), requires_grad=True)
    optimizer = torch.optim.Adam([{"params": policy.parameters()}, {"params": [value], "lr": value_learning_rate}],
                                 lr=learning_rate)
    curves, history = live_curves("DRO on the enumerable task"), []
    for _ in range(steps):
        logp = policy.sequence_logprobs(task.sequences)
        loss = pl.dro_loss(logp, ref, task.rewards, value.expand_as(logp), tau=tau).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if curves is not None:
            history.append({"loss": loss.item(), "V": value.item()})
            curves.update(history, steps)
    return policy, value.item()


def self_play(task: EnumerableTask, preference: torch.Tensor, method: str, iterations: int, *, eta: float = 1.0,
              steps: int = 200, learning_rate: float = 0.05) -> list[torch.Tensor]:
    """General-preference self-play on the enumerable task (chapter 08, experiment d).
    Each iteration starts from pi_t and fits pi_{t+1} by gradient steps on:

    - "sppo": `sppo_loss` over every y, weighted by pi_t, with the exact win rate
      P(y > pi_t) (Wu et al. 2024, arXiv 2405.00675);
    - "dno": DPO with pi_t as the reference and soft labels sigmoid(P(y > pi_t) -
      P(y' > pi_t)) on all pairs, beta = 1/eta (DNO, Rosset et al. 2024, arXiv 2404.03715);
    - "spo": the policy gradient of E_pi[P(y > pi_t)], the win rate against the policy's
      own samples as reward, with no reward model (Swamy et al. 2024, arXiv 2401.04056).

    Each targets the multiplicative-weights step pi_{t+1} ∝ pi_t exp(eta P(y > pi_t)) in
    its own way; the average of such iterates converges to the Nash equilibrium of the
    preference game, intransitive or not. Returns the iterates' log-probabilities. In a
    notebook, the exploitability of the last iterate and of the average is drawn per iteration.
    """
    iterates = [task.ref_logprobs()]
    policy = task.new_policy()
    curves, history = live_curves(f"{method} self-play"), []
    for _ in range(iterations):
        previous = iterates[-1].detach()
        wins = win_rates(preference, previous)
        frozen = TabularPolicy(task.vocab_size, task.length, policy.logits.detach())
        if method == "dno":
            soft = torch.sigmoid(wins[:, None] - wins[None, :])
            policy, _ = fit_policy(task, all_pairs(soft), PreferenceConfig(loss="dpo", beta=1 / eta, learning_rate=learning_rate),
                                   steps, reference=previous, init=frozen, live=False)
        else:
            policy = frozen
            optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
            for _ in range(steps):
                logp = policy.sequence_logprobs(task.sequences)
                if method == "sppo":
                    loss = (previous.exp() * pl.sppo_loss(logp, previous, wins, eta=eta)).sum()
                elif method == "spo":
                    loss = -(logp.exp() * wins).sum() * eta  # exact policy gradient of the win rate
                else:
                    raise ValueError(f"unknown self-play method {method!r}; valid: 'sppo', 'dno', 'spo'")
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        iterates.append(policy.sequence_logprobs(task.sequences).detach())
        if curves is not None:
            history.append({"exploitability of π_t": exploitability(preference, iterates[-1]),
                            "of the average": exploitability(preference, average_policy(iterates))})
            curves.update(history, iterations)
    return iterates


def average_policy(iterates: list[torch.Tensor]) -> torch.Tensor:
    """log of the mixture (1/T) sum_t pi_t: the self-play output whose exploitability
    vanishes (the iterates themselves may cycle around the equilibrium)."""
    return torch.logsumexp(torch.stack(iterates), 0) - torch.log(torch.tensor(float(len(iterates))))


def with_rewards(task: EnumerableTask, rewards: torch.Tensor) -> EnumerableTask:
    """A copy of `task` whose reward is `rewards` (e.g. a reward model fitted to data), so
    chapter 01's policy-gradient trainers can optimise it on-policy."""
    copy = replace(task)
    copy.rewards = rewards.detach().clone()
    return copy


def fit_tabular_reward(task: EnumerableTask, pairs: Pairs, steps: int = 500, learning_rate: float = 0.1) -> torch.Tensor:
    """A Bradley-Terry reward model with one free value per sequence, fitted to `pairs`;
    sequences absent from the data keep the initial 0 (chapter 08, experiment c)."""
    reward = torch.zeros(task.num_sequences, requires_grad=True)
    optimizer = torch.optim.Adam([reward], lr=learning_rate)
    for _ in range(steps):
        gap = reward[pairs.first] - reward[pairs.second]
        loss = -(pairs.prob_first * torch.nn.functional.logsigmoid(gap)
                 + (1 - pairs.prob_first) * torch.nn.functional.logsigmoid(-gap)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return reward.detach()


def iterative_dpo(task: EnumerableTask, preference: torch.Tensor, config: PreferenceConfig, *, rounds: int,
                  pairs_per_round: int, steps_per_round: int, data_logprobs: torch.Tensor | None = None,
                  seed: int = 0) -> tuple[TabularPolicy, torch.Tensor]:
    """Offline (rounds = 1) or iterative, on-policy DPO (Xiong et al. 2024, arXiv
    2312.11456): each round samples `pairs_per_round` pairs from the current policy (from
    exp(`data_logprobs`) instead, if given: data from another policy), labels them with
    `preference`, adds them to the data and trains for `steps_per_round` steps against the
    fixed pi_ref. Returns the policy and which sequences were ever labelled (chapter 08,
    experiments c and f)."""
    generator = torch.Generator().manual_seed(seed)
    policy, labelled, data = task.new_policy(), torch.zeros(task.num_sequences, dtype=torch.bool), None
    for _ in range(rounds):
        source = data_logprobs if data_logprobs is not None else policy.sequence_logprobs(task.sequences).detach()
        new = sample_pairs(preference, pairs_per_round, source, generator=generator)
        data = new if data is None else Pairs(*(torch.cat([getattr(data, f), getattr(new, f)]) for f in ("first", "second", "prob_first")))
        labelled |= new.covered(task.num_sequences)
        policy, _ = fit_policy(task, data, config, steps_per_round, init=policy)
    return policy, labelled
