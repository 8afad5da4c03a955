# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Analysis of DPO
#
# *Companion to §8 of "Reinforcement Learning Enhanced LLMs: A Survey" (Wang et al.,
# [arXiv 2412.10400](https://arxiv.org/abs/2412.10400)).*
#
# Chapter 07 derived DPO and watched it work. The papers of §8 ask where it breaks. Each claim
# below is an experiment with one number that shows it:
#
# | | claim | paper | where |
# |---|---|---|---|
# | a | on deterministic preferences DPO drives probabilities to the extremes; IPO stays regularised | IPO, [2310.12036](https://arxiv.org/abs/2310.12036) | enumerable task |
# | b | DPO can lower the chosen responses' likelihood; DPOP prevents it | Smaug, [2402.13228](https://arxiv.org/abs/2402.13228) | text world |
# | c | offline DPO leaves probability on sequences nobody labelled; on-policy training does not | Is DPO superior to PPO?, [2404.10719](https://arxiv.org/abs/2404.10719) | enumerable task |
# | d | under intransitive preferences Bradley–Terry methods fail; SPPO, DNO and SPO reach the Nash solution | [2405.00675](https://arxiv.org/abs/2405.00675), [2404.03715](https://arxiv.org/abs/2404.03715), [2401.04056](https://arxiv.org/abs/2401.04056) | enumerable task |
# | e | NPO and D2O learn from negatives alone | [2404.05868](https://arxiv.org/abs/2404.05868), [2403.03419](https://arxiv.org/abs/2403.03419) | text world |
# | f | iterative, on-policy DPO beats offline DPO for the same labels | [2312.11456](https://arxiv.org/abs/2312.11456) | enumerable task |
#
# TDPO ([2404.11999](https://arxiv.org/abs/2404.11999)), which adds a token-level KL to DPO,
# is in the library (`tdpo1`, `tdpo2`) and trains with the same entry point.

# %%
# On Colab, install the companion's package first (harmless elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "survey-lib @ git+https://github.com/rl-enhanced-llms/companion"], check=True)

# %% tags=["parameters"]
profile = "tiny"  # "tiny" (CPU, the zoo) | "small" (CPU, SmolLM2) | "colab" | "gpu"; sizes per profile: survey_lib/sizes.py
seed = 0
beta = 0.1  # the text world's KL strength
learning_rate = 3e-4
batch_size = 32  # rows per step on the text world (experiments b and e)
gradient_accumulation_steps = 1  # micro-batches a step is cut into: the same updates in less memory
n_pairs = 1000  # text-world comparisons (experiment b)
n_negatives = 1000  # SFT samples screened for negatives (experiment e)
violation_samples = 512  # fresh samples per policy on which experiment e's violation rate is measured
dpop_lambda = 50.0
self_play_iterations = 80  # experiment d
self_play_eta = 1.0
label_budget = 1000  # experiments c and f: labels for offline DPO, split over rounds online
online_rounds = 5
deterministic_steps = 3000  # experiment a: long enough for IPO to converge; DPO never does

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from survey_lib.book import Chapter
from survey_lib.enumerable_preferences import (
    average_policy, bradley_terry_matrix, exploitability, fit_policy, iterative_dpo, sample_pairs, self_play)
from survey_lib.generation import sample_completions
from survey_lib.models import trainable_copy
from survey_lib.policy_eval import evaluation_prompts
from survey_lib.preference_data import response_field, sample_response_pairs
from survey_lib.preference_config import PreferenceConfig
from survey_lib.preference_training import train_preference
from survey_lib.sequences import sequence_logprobs
from survey_lib.stats import mean_interval
from survey_lib.world.annotators import AnnotatorConfig, SimulatedAnnotators
from survey_lib.world.enumerable import EnumerableTask

chapter = Chapter("08_dpo_analysis", globals())
headline = {}

# %% [markdown]
# ## (a) Deterministic preferences: DPO runs to the extremes, IPO does not
#
# Azar et al. observe that when $P(y_w \succ y_l) = 1$, the Bradley–Terry reward gap that fits
# it is infinite, and DPO's loss $-\log\sigma(\beta h)$ keeps decreasing as $h \to \infty$, *for
# any β*: the KL regulariser is powerless. IPO's squared loss $(h - \tfrac{1}{2\beta})^2$ has a
# finite target. On a 9-sequence task with noiseless labels for every pair:

# %%
small = EnumerableTask(vocab_size=3, length=2, seed=seed)
certain = bradley_terry_matrix(small, scale=1e-3)  # P = 1 for the better sequence, up to 1e-3
all_pairs_small = sample_pairs(certain, 2000, generator=torch.Generator().manual_seed(seed))
traces, best, kl_growth = {}, {}, {}
for loss in ("dpo", "ipo"):
    policy, traces[loss] = fit_policy(small, all_pairs_small, PreferenceConfig(loss=loss, beta=0.5, learning_rate=0.05),
                                      deterministic_steps)
    best[loss] = policy.sequence_logprobs(small.sequences).exp().max().item()
    # a finite optimum has been reached when the exact KL stops moving over the last two thirds
    kl_growth[loss] = traces[loss][-1]["kl_to_ref"] - traces[loss][deterministic_steps // 3 - 1]["kl_to_ref"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for loss in traces:
    ax.plot([t["kl_to_ref"] for t in traces[loss]], label=f"{loss.upper()}: π(best) = {best[loss]:.3f}")
ax.set(xlabel="step", ylabel="exact KL(π || π_ref)", title="Noiseless preferences, β = 0.5")
ax.legend()
chapter.show(fig, "a_deterministic")
headline["a_best_probability"], headline["a_kl_growth"] = best, kl_growth
print({k: round(v, 4) for k, v in best.items()}, "(pi_ref's best:", round(small.ref_logprobs().exp().max().item(), 3), ")")
print("exact KL growth over the last two thirds of training:", {k: f"{v:.2e}" for k, v in kl_growth.items()})

# %% [markdown]
# DPO piles its mass on the single best sequence (the others are driven towards zero
# probability), as if β were 0; IPO settles on a policy that still spreads its mass. The
# exact KL shows the difference in kind, not just in degree: IPO's has stopped moving (it
# reached its finite optimum), DPO's is still growing at the end, however long it trains,
# because its optimum lies at infinity. How close DPO gets to probability 1 in a fixed number
# of steps depends on the task's rewards, hence on `seed`; that it keeps moving does not.
#
# ## (b) DPO lowers the chosen response's likelihood; DPOP does not
#
# DPO only constrains the *margin* $h$: it is satisfied when $\log\pi(y_l)$ falls faster than
# $\log\pi(y_w)$, so both may fall, and often do when chosen and rejected share most tokens.
# DPO-Positive adds $-\lambda\max(0, \log\pi_\text{ref}(y_w) - \log\pi(y_w))$ inside the
# sigmoid. We train both on the text world's comparisons and measure the change in
# $\log\pi(y_w)$ on the training pairs.

# %%
world = chapter.profile.world(seed)
sft, tokenizer = chapter.profile.load("text")
annotators = SimulatedAnnotators(world, AnnotatorConfig(temperature=0.2, disagreement=0.3, seed=seed))
rows = sample_response_pairs(sft, tokenizer, world, n_pairs, seed=seed).label(annotators)
prompts, chosen = [r["prompt"] for r in rows], [r["chosen"] for r in rows]
before = sequence_logprobs(sft, tokenizer, prompts, chosen)
text_training = dict(beta=beta, learning_rate=learning_rate, batch_size=batch_size,
                     gradient_accumulation_steps=gradient_accumulation_steps, seed=seed)  # experiments b and e
chosen_change, change_interval = {}, {}
for name, settings in {"DPO": dict(loss="dpo"), "DPOP": dict(loss="dpop", dpop_lambda=dpop_lambda)}.items():
    torch.manual_seed(seed)
    policy = trainable_copy(sft)
    train_preference(policy, PreferenceConfig(**text_training, **settings), rows, tokenizer=tokenizer)
    change = sequence_logprobs(policy, tokenizer, prompts, chosen) - before
    chosen_change[name] = change.mean().item()
    change_interval[name] = mean_interval(change.numpy(), seed=seed)  # over the training pairs
headline["b_chosen_logprob_change"], headline["b_chosen_change_interval"] = chosen_change, change_interval
for name, ci in change_interval.items():
    print(f"{name}: {ci['estimate']:+.3f} nats per chosen response, 95% interval [{ci['low']:+.3f}, {ci['high']:+.3f}]")

# %% [markdown]
# DPO lowers the log-likelihood of its chosen responses (the 95% interval over the training
# pairs lies below zero; by how much varies from seed to seed, as each seed trains on other
# comparisons); DPOP keeps it within a tenth of a nat of the reference, or raises it.
# That is the tiny profile. On SmolLM2 (issue 14's `small` sizes, not yet enabled for this
# chapter) the measurement disagreed: DPO *raised* the chosen log-likelihood, by nats, and DPOP too; plausibly because a pretrained model's two sampled answers to a
# request rarely share most of their tokens, so the margin can grow by lifting the chosen
# one; the displacement is a property of the data as much as of the loss.

# %% [markdown]
# ## (c) Offline DPO leaves mass where nobody looked
#
# Xu et al. prove that every PPO solution is a DPO solution but not conversely: DPO's loss says
# nothing about sequences outside the data, so a DPO policy may put probability there. Their
# cure is on-policy data. We give offline DPO `label_budget` comparisons collected by *another*
# policy (as public preference sets are), and an online variant the same number of labels,
# sampled from its own current policy over `online_rounds` rounds. The measure: how much
# probability the final policy puts on sequences that **never received a label**.

# %%
task = EnumerableTask(vocab_size=4, length=4, seed=seed, ref_temperature=1.5)
task_beta = 0.5
bt = bradley_terry_matrix(task)
dpo_config = PreferenceConfig(loss="dpo", beta=task_beta, learning_rate=0.05)
other_policy = EnumerableTask(vocab_size=4, length=4, seed=seed + 100, ref_temperature=1.5).ref_logprobs()
runs = {
    "offline, other policy's data": dict(rounds=1, pairs_per_round=label_budget, steps_per_round=300, data_logprobs=other_policy),
    "offline, π_ref's data": dict(rounds=1, pairs_per_round=label_budget, steps_per_round=300, data_logprobs=task.ref_logprobs()),
    "online (on-policy rounds)": dict(rounds=online_rounds, pairs_per_round=label_budget // online_rounds, steps_per_round=300 // online_rounds),
}
unlabelled_mass, objective = {}, {}
for name, settings in runs.items():
    policy, labelled = iterative_dpo(task, bt, dpo_config, seed=seed, **settings)
    logp = policy.sequence_logprobs(task.sequences).detach()
    unlabelled_mass[name] = {"policy": logp.exp()[~labelled].sum().item(), "π_ref": task.ref_logprobs().exp()[~labelled].sum().item()}
    objective[name] = {"J": task.objective(policy, task_beta).item(), "kl_to_optimum": task.kl_to_optimum(policy, task_beta)}
for name in runs:
    print(f"{name:30s} mass on unlabelled sequences {unlabelled_mass[name]['policy']:.3f} (π_ref put {unlabelled_mass[name]['π_ref']:.3f} there)")
headline["c_unlabelled_mass"] = {k: v["policy"] for k, v in unlabelled_mass.items()}

# %% [markdown]
# With another policy's data, offline DPO ends with a sizeable share of its probability on
# sequences no annotator ever judged, whatever their quality; the online policy keeps less
# there (both are printed above; usually many times less, how much less varies with `seed`),
# because it labels its own samples. (DPO did
# move mass *off* those sequences, which $\pi_\text{ref}$ favoured; it simply has no signal
# about them.)
#
# ## (d) Intransitive preferences: Bradley–Terry fails, self-play finds the Nash solution
#
# No reward explains rock–paper–scissors. The first token of a sequence is its "hand", and
# $P(y \succ y') = 0.5 \pm 0.4$ when one hand beats the other. The right target is the
# **von Neumann winner**, the policy no response beats more than half the time: its
# exploitability $\max_y P(y \succ \pi) - \tfrac12$ is zero. DPO fits a Bradley–Terry reward
# to pairs from $\pi_\text{ref}$; SPPO, DNO and SPO play against themselves, each step a
# multiplicative-weights update $\pi_{t+1} \propto \pi_t \exp(\eta P(y \succ \pi_t))$ reached by
# their own loss (library: `self_play`). Their guarantee is for the average iterate.

# %%
game = EnumerableTask(vocab_size=3, length=2, seed=seed)
hand = game.sequences[:, 0]
beats = ((hand[:, None] - hand[None, :]) % 3 == 1).float()
rps = 0.5 + 0.4 * (beats - beats.T)
pairs = sample_pairs(rps, 5000, game.ref_logprobs(), generator=torch.Generator().manual_seed(seed))
dpo_policy, _ = fit_policy(game, pairs, PreferenceConfig(loss="dpo", beta=0.1, learning_rate=0.05), 300)
exploit = {"π_ref": exploitability(rps, game.ref_logprobs()),
           "DPO (Bradley–Terry)": exploitability(rps, dpo_policy.sequence_logprobs(game.sequences).detach())}
curves = {}
for method in ("sppo", "dno", "spo"):
    iterates = self_play(game, rps, method, self_play_iterations, eta=self_play_eta, steps=60)
    curves[method] = [exploitability(rps, average_policy(iterates[: t + 1])) for t in range(len(iterates))]
    exploit[f"{method.upper()} (average iterate)"] = curves[method][-1]
fig, ax = plt.subplots(figsize=(6, 3.5))
for method, curve in curves.items():
    ax.plot(curve, label=method.upper())
ax.axhline(exploit["DPO (Bradley–Terry)"], color="k", ls="--", label="DPO")
ax.set(xlabel="self-play iteration", ylabel="exploitability of the average policy", yscale="log", title="Rock–paper–scissors preferences")
ax.legend()
chapter.show(fig, "d_intransitive")
headline["d_exploitability"] = exploit
print({k: round(v, 3) for k, v in exploit.items()})

# %% [markdown]
# DPO ends up *more* exploitable than the reference policy it started from: a Bradley–Terry
# reward cannot represent a cycle, so DPO pushes mass towards the hands its fitted reward
# happens to rank highest, and the hand that beats them wins. How exploitable depends on how
# close $\pi_\text{ref}$'s hands already were to the uniform Nash mix (that is, on `seed`);
# the self-play averages end near zero exploitability on every seed.

# %% [markdown]
# ## (e) Learning from negatives alone: NPO and D2O
#
# Sometimes only bad examples exist (harmful outputs, text to unlearn). NPO is DPO without the
# chosen term; D2O contrasts each negative with $K$ samples of the reference policy. Here the
# "harmful" outputs are the SFT policy's negative-sentiment reviews; the violation rate is the
# fraction of fresh samples with negative sentiment.

# %%
screen_prompts = evaluation_prompts(world, n_negatives)
samples = sample_completions(sft, tokenizer, screen_prompts, seed=seed + 5)
negatives = [{"prompt": p, "rejected": response_field(p, c)} for p, c in zip(screen_prompts, samples) if world.sentiment(c) < 0]
eval_prompts = evaluation_prompts(world, violation_samples)


def violation_rate(model):
    return float(np.mean([world.sentiment(c) < 0 for c in sample_completions(model, tokenizer, eval_prompts, seed=seed + 6)]))


violations = {"SFT": violation_rate(sft)}
for name in ("npo", "d2o"):
    torch.manual_seed(seed)
    policy = trainable_copy(sft)
    train_preference(policy, PreferenceConfig(loss=name, **text_training), negatives, tokenizer=tokenizer)
    violations[name.upper()] = violation_rate(policy)
headline["e_violation_rate"] = violations
print(f"{len(negatives)} negatives;", {k: round(v, 3) for k, v in violations.items()})

# %% [markdown]
# ## (f) Iterative, on-policy DPO versus offline DPO
#
# Xiong et al. analyse DPO under a KL constraint and show that fresh labels on the current
# policy's samples, against a fixed $\pi_\text{ref}$, beat the same number of offline labels.
# From experiment (c): the exact KL to $\pi^*$ and the objective $J(\pi)$ for the same label budget.

# %%
optimum = task_beta * task.log_partition(task_beta).item()
for name, values in objective.items():
    print(f"{name:30s} KL to pi* {values['kl_to_optimum']:.3f}   J {values['J']:.3f}   (J(pi*) = {optimum:.3f}, J(pi_ref) = {task.objective(task.reference, task_beta).item():.3f})")
headline["f_kl_to_optimum"] = {k: v["kl_to_optimum"] for k, v in objective.items()}

# %% [markdown]
# Offline DPO on a finite sample over-fits the labels it has (each pair seen once is, to
# DPO, a deterministic preference: experiment a); the online learner spends its labels where
# its policy is, and ends several times closer to $\pi^*$ than either offline run.

# %%
chapter.finish(headline, {"optimum_J": optimum, "n_negatives": len(negatives)})
