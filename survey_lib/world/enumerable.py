"""The enumerable sequence task: every sequence can be listed, so everything is exact.

Defined for chapter 01 (the KL-regularised objective and its closed-form optimum) and used
wherever a loss is checked against theory (chapters 07-08: DPO and its variants converge to
the same optimum).

A sequence is `length` tokens from a vocabulary of `vocab_size`; there are
`vocab_size ** length` of them. A policy is token-level, like an LLM: the state is the
prefix generated so far and the action is the next token. The reference policy pi_ref
and the reward r(y) are fixed by a seed. For the KL-regularised objective

    J(pi) = E_{y~pi}[r(y)] - beta * KL(pi || pi_ref)

the optimum is pi*(y) = pi_ref(y) exp(r(y)/beta) / Z(beta) (e.g. Rafailov et al. 2023,
arXiv 2305.18290, eq. 4), and J(pi) = beta log Z - beta KL(pi || pi*).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_choice, check_range, check_type

REWARD_KINDS = ("random", "count")


class TabularPolicy(nn.Module):
    """A token-level policy with one free logit vector per prefix (state).

    The tabular analogue of an LLM: pi(y) = prod_t pi(y_t | y_<t). Prefix y_<t of
    length t is stored at row `offset[t] + (y_<t read as a base-V number)`.

    Args:
        vocab_size: number of actions (tokens) per state.
        length: number of tokens per sequence.
        logits: optional initial table of shape (num_prefixes, vocab_size).
    """

    def __init__(self, vocab_size: int, length: int, logits: torch.Tensor | None = None):
        super().__init__()
        self.vocab_size, self.length = vocab_size, length
        sizes = [vocab_size**t for t in range(length)]
        self.register_buffer("offsets", torch.tensor([sum(sizes[:t]) for t in range(length)]))
        self.register_buffer("place", vocab_size ** torch.arange(length))
        num_prefixes = sum(sizes)
        if logits is None:
            logits = torch.zeros(num_prefixes, vocab_size)
        if tuple(logits.shape) != (num_prefixes, vocab_size):
            raise ValueError(f"logits must have shape {(num_prefixes, vocab_size)}, got {tuple(logits.shape)}")
        self.logits = nn.Parameter(logits.clone().float())

    def prefix_index(self, sequences: torch.Tensor) -> torch.Tensor:
        """Row of the logit table for each position's state, shape (batch, length)."""
        number = (sequences * self.place.flip(0)).sum(-1, keepdim=True)  # y read in base V
        return number // self.place.flip(0) // self.vocab_size + self.offsets

    def token_logprobs(self, sequences: torch.Tensor) -> torch.Tensor:
        """log pi(y_t | y_<t) for every position, shape (batch, length)."""
        logp = torch.log_softmax(self.logits[self.prefix_index(sequences)], dim=-1)
        return logp.gather(-1, sequences.unsqueeze(-1)).squeeze(-1)

    def sequence_logprobs(self, sequences: torch.Tensor) -> torch.Tensor:
        """log pi(y), shape (batch,)."""
        return self.token_logprobs(sequences).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample n sequences token by token, shape (n, length)."""
        sequences = torch.zeros(n, self.length, dtype=torch.long, device=self.logits.device)
        for t in range(self.length):
            rows = self.prefix_index(sequences)[:, t]
            probs = torch.softmax(self.logits[rows], dim=-1)
            sequences[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        return sequences


def exact_kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = sum_y p(y) (log p(y) - log q(y)) over all enumerated sequences."""
    return (logp.exp() * (logp - logq)).sum()


@dataclass
class EnumerableTask:
    """Every sequence of `length` tokens over `vocab_size` tokens, with r(y) and pi_ref.

    Args:
        vocab_size: tokens per position (>= 2).
        length: tokens per sequence (>= 1); vocab_size ** length must stay <= 2**16.
        reward: "random" (a standard normal per sequence) or "count" (how many times
            token 0 occurs, a structured reward a token-level policy can learn locally).
        ref_temperature: scale of pi_ref's random logits; larger means a peakier pi_ref.
        seed: fixes pi_ref and the random reward.
    """

    vocab_size: int = 4
    length: int = 4
    reward: str = "random"
    ref_temperature: float = 1.0
    seed: int = 0

    def __post_init__(self):
        check_type("vocab_size", self.vocab_size, int)
        check_type("length", self.length, int)
        check_range("vocab_size", self.vocab_size, 2)
        check_range("length", self.length, 1)
        check_choice("reward", self.reward, REWARD_KINDS)
        check_range("ref_temperature", self.ref_temperature, 0, low_open=True)
        if self.vocab_size**self.length > 2**16:
            raise ValueError(
                f"vocab_size ** length = {self.vocab_size ** self.length} sequences is too many to enumerate; "
                "keep it <= 65536"
            )
        gen = torch.Generator().manual_seed(self.seed)
        digits = torch.arange(self.vocab_size**self.length).unsqueeze(-1) // (
            self.vocab_size ** torch.arange(self.length - 1, -1, -1)
        )
        self.sequences = digits % self.vocab_size
        num_prefixes = sum(self.vocab_size**t for t in range(self.length))
        ref_logits = self.ref_temperature * torch.randn(num_prefixes, self.vocab_size, generator=gen)
        self.reference = TabularPolicy(self.vocab_size, self.length, ref_logits).requires_grad_(False)
        if self.reward == "random":
            self.rewards = torch.randn(len(self.sequences), generator=gen)
        else:
            self.rewards = (self.sequences == 0).sum(-1).float()

    @property
    def num_sequences(self) -> int:
        return len(self.sequences)

    def new_policy(self, init: str = "reference") -> TabularPolicy:
        """A trainable policy initialised at pi_ref ("reference") or uniform ("uniform")."""
        check_choice("init", init, ("reference", "uniform"))
        logits = self.reference.logits.detach() if init == "reference" else None
        return TabularPolicy(self.vocab_size, self.length, logits)

    def tabular(self, logprobs: torch.Tensor) -> TabularPolicy:
        """The token-level policy whose sequence distribution is exp(logprobs).

        Any distribution over sequences factorises as prod_t p(y_t | y_<t); the logit of
        action a in state y_<t is log p(y_<t, a), the log-mass of every sequence starting
        with that prefix (softmax divides by the mass of y_<t).
        """
        if tuple(logprobs.shape) != (self.num_sequences,):
            raise ValueError(f"logprobs must have shape ({self.num_sequences},), got {tuple(logprobs.shape)}")
        mass = logprobs.double().exp()
        rows = self.reference.prefix_index(self.sequences)
        logits = torch.zeros_like(self.reference.logits, dtype=torch.float64)
        number = (self.sequences * self.reference.place.flip(0)).sum(-1)
        for t in range(self.length):
            group = number // self.vocab_size ** (self.length - 1 - t)  # the prefix y_<=t
            prefix_mass = torch.zeros(int(group.max()) + 1, dtype=torch.float64).index_add_(0, group, mass)
            logits[rows[:, t], self.sequences[:, t]] = prefix_mass[group].clamp_min(1e-300).log()
        return TabularPolicy(self.vocab_size, self.length, logits.float())

    def reward_of(self, sequences: torch.Tensor) -> torch.Tensor:
        """r(y) for a batch of sequences."""
        index = (sequences * (self.vocab_size ** torch.arange(self.length - 1, -1, -1))).sum(-1)
        return self.rewards[index]

    def ref_logprobs(self) -> torch.Tensor:
        """log pi_ref(y) for every sequence, in the order of `sequences`."""
        return self.reference.sequence_logprobs(self.sequences)

    def log_partition(self, beta: float) -> torch.Tensor:
        """log Z(beta) = log sum_y pi_ref(y) exp(r(y)/beta)."""
        check_range("beta", beta, 0, low_open=True)
        return torch.logsumexp(self.ref_logprobs() + self.rewards / beta, dim=0)

    def optimal_logprobs(self, beta: float) -> torch.Tensor:
        """log pi*(y) for the KL-regularised objective with coefficient beta."""
        return self.ref_logprobs() + self.rewards / beta - self.log_partition(beta)

    def optimum_summary(self, beta: float) -> dict[str, float]:
        """pi*'s expected reward E_pi*[r] and its distance KL(pi* || pi_ref) at this beta
        (chapter 01's beta explorer): J(pi*) = beta log Z is their difference, beta-weighted."""
        log_pi_star = self.optimal_logprobs(beta)
        return {
            "expected_reward": float((log_pi_star.exp() * self.rewards).sum()),
            "kl_to_reference": float(exact_kl(log_pi_star, self.ref_logprobs())),
        }

    def objective(self, policy: TabularPolicy, beta: float) -> torch.Tensor:
        """J(pi) = E_pi[r] - beta KL(pi || pi_ref), exactly."""
        logp = policy.sequence_logprobs(self.sequences)
        return (logp.exp() * self.rewards).sum() - beta * exact_kl(logp, self.ref_logprobs())

    def kl_to_optimum(self, policy: TabularPolicy, beta: float) -> float:
        """KL(pi || pi*), the distance chapters 01 and 07 drive to zero."""
        with torch.no_grad():
            return exact_kl(policy.sequence_logprobs(self.sequences), self.optimal_logprobs(beta)).item()
