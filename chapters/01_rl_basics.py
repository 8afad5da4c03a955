# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · RL basics for LLMs
#
# *Companion to §2 of "Reinforcement Learning Enhanced LLMs: A Survey" (Wang et al.,
# [arXiv 2412.10400](https://arxiv.org/abs/2412.10400)).*
#
# Every method in this book optimises a language model with reinforcement learning, so
# we start with RL's vocabulary mapped onto an LLM, then four experiments that we will
# lean on in every later chapter:
#
# 1. **the LLM as a token-level policy**, on the tiny text model of the zoo;
# 2. **REINFORCE on a bandit**, with and without a baseline: the variance a baseline removes;
# 3. **PPO's clipped surrogate**, on a toy where clipping visibly stops the update;
# 4. **the KL-regularised objective**, its closed-form optimum
#    $\pi^\star \propto \pi_{\mathrm{ref}}\, e^{r/\beta}$, and a token-level policy trained
#    towards it with REINFORCE and with PPO, measured by the exact $\mathrm{KL}(\pi\,\|\,\pi^\star)$.
#
# | RL | for an LLM |
# |---|---|
# | agent | the language model |
# | state $s_t$ | the prompt plus the tokens generated so far |
# | action $a_t$ | the next token, from a vocabulary of $|V|$ (tens of thousands) |
# | policy $\pi_\theta(a_t \mid s_t)$ | the model's next-token distribution |
# | transition | deterministic: append $a_t$ to $s_t$ |
# | reward | a score of the finished response (a reward model, a checker, a human), usually only at the last token |
# | episode | one response, ended by the end-of-sequence token |

# %%
# On Colab, install the companion's package first (harmless elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "survey-lib @ git+https://github.com/rl-enhanced-llms/companion"], check=True)

# %% tags=["parameters"]
profile = "tiny"  # "tiny" (CPU, the zoo) | "small" (CPU, SmolLM2) | "colab" | "gpu"; sizes per profile: survey_lib/sizes.py
seed = 0
# the bandit
bandit_arms = 10
reward_offset = 5.0  # added to every arm's mean reward
variance_samples = 20000  # single-pull gradient estimates per variance measurement
bandit_steps = 200
bandit_runs = 20  # learning curves are averaged over this many seeds
# PPO's clip
clip_range = 0.2
# the enumerable task and training towards pi*
vocab_size = 4
seq_length = 4
beta = 0.5
reinforce_steps = 300
ppo_steps = 100  # PPO reuses each batch for 4 epochs x 4 minibatches
batch_size = 256
learning_rate = 0.05

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from survey_lib.book import Chapter
from survey_lib.generation import sample_completions
from survey_lib.rl_basics import (
    Bandit,
    PolicyGradientConfig,
    exact_gradient_variance,
    gradient_variance,
    reinforce_gradients,
    surrogate_ratio_trace,
    train_bandit,
    train_towards_optimum,
)
from survey_lib.sequences import encode_prompt
from survey_lib.widgets import beta_explorer
from survey_lib.world.enumerable import EnumerableTask

chapter = Chapter("01_rl_basics", globals())

# %% [markdown]
# ## 1. The LLM as a token-level policy
#
# The `tiny` profile's text model is a 2-layer transformer pre-trained on the text world:
# short movie-review continuations of prompts such as "the movie" (on `small`, SmolLM2
# answering a request for a review, through its chat template). In the state $s_0 =$ the
# prompt, the policy is a distribution over the next token:

# %%
model, tokenizer = chapter.profile.load("text")
world = chapter.profile.world(seed)
prompt = world.eval_prompts[0]
state = prompt if isinstance(prompt, str) else prompt[-1]["content"]  # a conversation: show its request
with torch.no_grad():
    ids = torch.tensor([encode_prompt(tokenizer, prompt)], device=model.device)
    next_token = torch.softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
top = torch.topk(next_token, 8)
for p, i in zip(top.values, top.indices):
    print(f"pi({tokenizer.decode([int(i)])!r:>12} | s_0) = {p:.3f}")

# %% [markdown]
# An episode samples one action per state until the end-of-sequence token. The reward
# arrives only at the end: here the text world's **gold reward**, which scores sentiment,
# fluency (under a fixed trigram model of the corpus), length and repetition (on `small`:
# VADER sentiment, length, termination and repetition of real English). This is
# the sparse, delayed feedback over a huge action space that Sun (arXiv 2310.06147) names
# as what makes policy learning for LLMs hard.

# %%
completion = sample_completions(model, tokenizer, [prompt], seed=seed)[0]
tokens = completion.split()
for t, token in enumerate(tokens):
    shown = " ".join([state, *tokens[:t]])
    print(f"s_{t} = {('...' + shown[-45:]) if len(shown) > 48 else shown!r:52} a_{t} = {token!r}")
print(f"reward at the end: gold = {world.gold_reward([prompt], [completion])[0]:+.3f}")
del model

# %% [markdown]
# ## 2. REINFORCE, and why a baseline
#
# For a policy $\pi_\theta$ and reward $r$, the policy-gradient theorem (Williams 1992) gives
#
# $$\nabla_\theta\, \mathbb{E}_{a\sim\pi_\theta}[r(a)] = \mathbb{E}_{a\sim\pi_\theta}\big[(r(a) - b)\,\nabla_\theta \log \pi_\theta(a)\big]$$
#
# for any baseline $b$ that does not depend on $a$, since $\mathbb{E}[\nabla_\theta\log\pi_\theta] = 0$.
# The baseline leaves the gradient unbiased and can shrink its variance a lot. We measure
# this on a 10-armed bandit whose rewards all sit near `reward_offset`: without a baseline
# every pull pushes its own arm up, and only the differences between arms carry signal.

# %%
bandit = Bandit(n_arms=bandit_arms, reward_offset=reward_offset, seed=seed)
rng = np.random.default_rng(seed)
logits = np.zeros(bandit_arms)
g_plain = reinforce_gradients(bandit, logits, variance_samples, baseline=False, rng=rng)
g_base = reinforce_gradients(bandit, logits, variance_samples, baseline=True, rng=rng)
variance_ratio = gradient_variance(g_plain) / gradient_variance(g_base)
exact_ratio = exact_gradient_variance(bandit, logits, False) / exact_gradient_variance(bandit, logits, True)
print(f"gradient variance without baseline {gradient_variance(g_plain):.3f}, with {gradient_variance(g_base):.3f}")
print(f"ratio {variance_ratio:.1f} measured over {variance_samples} pulls, {exact_ratio:.1f} exactly")
print(f"both estimate the same gradient: max |mean difference| = {np.abs(g_plain.mean(0) - g_base.mean(0)).max():.3f}")

# %% [markdown]
# The exact value comes from the closed form
# $\mathbb{E}\|g\|^2 = \sum_a \pi_a\big((\mu_a - b)^2 + \sigma^2\big)\,\|e_a - \pi\|^2$ minus $\|\mathbb{E}g\|^2$:
# without a baseline every arm contributes $\approx \text{offset}^2$, with the value baseline only
# its spread around the mean. So the ratio grows with the offset (left, below), while
# learning curves show what the variance costs: averaged over seeds, the baseline's
# policy reaches a higher expected reward in the same number of steps.

# %%
offsets = [0.0, 1.0, 2.0, 5.0, 10.0]
ratios = []
for off in offsets:
    b = Bandit(n_arms=bandit_arms, reward_offset=off, seed=seed)
    r = np.random.default_rng(seed)
    ratios.append(gradient_variance(reinforce_gradients(b, logits, variance_samples, False, r)) / gradient_variance(reinforce_gradients(b, logits, variance_samples, True, r)))
curves = {
    name: np.mean([train_bandit(bandit, flag, bandit_steps, lr=0.1, batch=4, rng=np.random.default_rng(run)) for run in range(bandit_runs)], axis=0)
    for name, flag in (("no baseline", False), ("baseline", True))
}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.plot(offsets, ratios, "o-")
ax1.set(xlabel="reward offset", ylabel="variance ratio (none / baseline)", yscale="log", title="Variance removed by a baseline")
for name, curve in curves.items():
    ax2.plot(curve, label=name)
ax2.axhline(bandit.means.max(), color="gray", ls=":", label="best arm")
ax2.set(xlabel="step", ylabel="expected reward", title=f"REINFORCE, mean of {bandit_runs} runs")
ax2.legend()
chapter.show(fig, "bandit")
bandit_final = {name: float(c[-1]) for name, c in curves.items()}

# %% [markdown]
# ## 3. PPO's clipped surrogate
#
# Policy-gradient methods that reuse a batch for several updates weight each sample by
# $\rho = \pi_\theta(a)/\pi_{\text{old}}(a)$. Nothing stops $\rho$ from running away. PPO
# (Schulman et al. 2017) maximises the clipped surrogate
#
# $$L^{\text{CLIP}}(\theta) = \mathbb{E}\Big[\min\big(\rho\,A,\ \operatorname{clip}(\rho, 1-\epsilon, 1+\epsilon)\,A\big)\Big]$$
#
# whose gradient vanishes once $\rho$ leaves $[1-\epsilon, 1+\epsilon]$ in the direction the
# advantage $A$ favours. Below, 50 gradient steps on one batch with a positive advantage on
# action 0 (and zero on the others): without clipping the ratio keeps growing; with it,
# the ratio stops just past $1+\epsilon$.

# %%
plain = surrogate_ratio_trace(None, advantages=(1.0, 0.0, 0.0))
clipped = surrogate_ratio_trace(clip_range, advantages=(1.0, 0.0, 0.0))
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(plain[:, 0], label="no clipping")
ax.plot(clipped[:, 0], label=f"clipped, eps = {clip_range}")
ax.axhline(1 + clip_range, color="gray", ls=":")
ax.set(xlabel="gradient step on the same batch", ylabel="ratio pi/pi_old of action 0", title="PPO's clip bounds the update")
ax.legend()
chapter.show(fig, "ppo_clip")
print(f"final ratio: unclipped {plain[-1, 0]:.2f}, clipped {clipped[-1, 0]:.2f}")

# %% [markdown]
# The clip acts **per sample**, not on the policy as a whole. Give the other two actions
# negative advantages and their ratios are pushed down to $1-\epsilon$, which, through
# the softmax's normalisation, lifts action 0 past $1+\epsilon$ anyway:

# %%
mixed = surrogate_ratio_trace(clip_range, advantages=(1.0, -0.5, -0.5))
print(f"ratios after 50 clipped steps with advantages (1, -0.5, -0.5): {np.round(mixed[-1], 2)}")

# %% [markdown]
# ## 4. The KL-regularised objective and its optimum
#
# RLHF maximises reward while staying close to a reference policy (the SFT model):
#
# $$J(\pi) = \mathbb{E}_{y\sim\pi}[r(y)] - \beta\,\mathrm{KL}(\pi\,\|\,\pi_{\mathrm{ref}}).$$
#
# Writing $Z = \sum_y \pi_{\mathrm{ref}}(y)\,e^{r(y)/\beta}$ and
# $\pi^\star(y) = \pi_{\mathrm{ref}}(y)\,e^{r(y)/\beta}/Z$, a line of algebra gives
#
# $$J(\pi) = \beta \log Z - \beta\,\mathrm{KL}(\pi\,\|\,\pi^\star),$$
#
# so $\pi^\star$ is the unique maximiser, and $\mathrm{KL}(\pi\|\pi^\star)$ measures exactly how far
# a policy is from optimal. DPO (chapter 07) is built on this closed form. On an LLM we
# cannot enumerate $y$; on the **enumerable task** (every sequence of `seq_length` tokens
# over `vocab_size` tokens, a random reward, a random token-level $\pi_{\mathrm{ref}}$) we can.

# %%
task = EnumerableTask(vocab_size=vocab_size, length=seq_length, seed=seed)
log_pi_star = task.optimal_logprobs(beta)
optimum = task.new_policy()
print(f"{task.num_sequences} sequences; sum of pi* = {log_pi_star.exp().sum():.6f}")
print(f"beta log Z = {beta * task.log_partition(beta):.4f}; J(pi_ref) = {task.objective(task.reference, beta):.4f}")
order = torch.argsort(log_pi_star, descending=True)[:24]
fig, ax = plt.subplots(figsize=(9, 3))
ax.bar(np.arange(24) - 0.2, task.ref_logprobs()[order].exp(), width=0.4, label="pi_ref")
ax.bar(np.arange(24) + 0.2, log_pi_star[order].exp(), width=0.4, label=f"pi*, beta = {beta}")
ax.set(xlabel="sequence (the 24 most likely under pi*)", ylabel="probability", title="pi* reweights pi_ref by exp(r / beta)")
ax.legend()
chapter.show(fig, "optimum")

# %% [markdown]
# Move β and watch the trade: a small β lets $\pi^\star$ pile onto the highest-reward
# sequences (a high expected reward, far from $\pi_{\mathrm{ref}}$); a large β keeps it close to
# $\pi_{\mathrm{ref}}$. The two numbers under the slider are exact, and
# $J(\pi^\star) = \mathbb{E}_{\pi^\star}[r] - \beta\,\mathrm{KL}(\pi^\star\|\pi_{\mathrm{ref}}) = \beta\log Z$.
# (Run headless, the cell prints them for a few values of β.)

# %%
beta_explorer(task, beta)

# %% [markdown]
# ## 5. Training a token-level policy towards $\pi^\star$
#
# Each sampled sequence gets the KL-shaped return $R(y) = r(y) - \beta\log\frac{\pi(y)}{\pi_{\mathrm{ref}}(y)}$,
# and $\mathbb{E}[R\,\nabla\log\pi] = \nabla J$ exactly (the term from differentiating
# $\log\pi$ inside $R$ has zero mean). **REINFORCE** takes one step per batch with the
# batch-mean baseline. **PPO** reuses each batch for several epochs of minibatches with the
# clipped surrogate, every token sharing its sequence's advantage. We track the exact
# $\mathrm{KL}(\pi\|\pi^\star)$ after every batch.

# %%
runs = {}
for method, steps in (("reinforce", reinforce_steps), ("ppo", ppo_steps)):
    config = PolicyGradientConfig(method=method, beta=beta, steps=steps, batch_size=batch_size, learning_rate=learning_rate, clip_range=clip_range, seed=seed)
    runs[method] = train_towards_optimum(task, config)
fig, ax = plt.subplots(figsize=(6, 3.5))
for method, run in runs.items():
    ax.plot(run["kl_to_optimum"], label=method)
ax.set(xlabel="batch of rollouts", ylabel="KL(pi || pi*)", yscale="log", title="Converging to the KL-regularised optimum")
ax.legend()
chapter.show(fig, "kl_to_optimum")
for method, run in runs.items():
    kl = run["kl_to_optimum"]
    print(f"{method:9s}: KL(pi || pi*) {kl[0]:.3f} -> {kl[-1]:.4f} ({kl[0] / kl[-1]:.0f}x lower); J = {run['objective'][-1]:.4f}")

# %% [markdown]
# ## What we measured
#
# - A baseline leaves the REINFORCE gradient unbiased and divides its variance by the
#   ratio printed above; it grows with the reward offset.
# - PPO's clip stops each sample's ratio at $1 \pm \epsilon$ but does not bound the policy
#   change as a whole: the source of its stability (Sun: conservative updates from nearly
#   on-policy data) and of its need for a KL penalty.
# - With the KL-shaped return, both REINFORCE and PPO drive $\mathrm{KL}(\pi\|\pi^\star)$ down by
#   more than tenfold (the factors are printed above). PPO falls far faster per batch of
#   samples, because it takes 16 updates per batch; at the same step size it then hovers at
#   a noise floor (each batch's 16 steps chase that batch's sampling noise), while REINFORCE
#   keeps descending. Sample efficiency against the precision of the fixed point: try a
#   smaller `learning_rate` for PPO.
#
# Chapter 04 scales these pieces up to PPO for a real (tiny) language model: value head,
# GAE, per-token KL penalty, and the reward-vs-KL frontier.

# %%
headline = {
    "variance_ratio": variance_ratio,
    "variance_ratio_exact": exact_ratio,
    "ppo_clip_ratio": float(clipped[-1, 0]),
    "unclipped_ratio": float(plain[-1, 0]),
}
for method, run in runs.items():
    headline[f"{method}_kl_start"] = float(run["kl_to_optimum"][0])
    headline[f"{method}_kl_end"] = float(run["kl_to_optimum"][-1])
chapter.finish(headline, details={"variance_ratio_by_offset": dict(zip(map(str, offsets), ratios)), "bandit_final_expected_reward": bandit_final, "best_arm_mean": float(bandit.means.max())})
