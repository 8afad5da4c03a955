# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · RLHF II: policy optimisation
#
# *Companion to §4.2 of "Reinforcement Learning Enhanced LLMs: A Survey" (Wang et al.,
# [arXiv 2412.10400](https://arxiv.org/abs/2412.10400)) and to Sun's RL perspective on RLHF
# ([arXiv 2310.06147](https://arxiv.org/abs/2310.06147)).*
#
# InstructGPT (Ouyang et al., [arXiv 2203.02155](https://arxiv.org/abs/2203.02155)) made RLHF a
# three-stage pipeline: **SFT** on demonstrations, a **reward model** fitted to human comparisons
# (chapter 03), then **PPO** against that reward model with a KL penalty that keeps the policy
# near the SFT model. This chapter runs the third stage and its alternatives on the text world,
# and measures two things for every method: how much **gold** reward it gains for how much
# $\mathrm{KL}(\pi\,\|\,\pi_\text{SFT})$ (the frontier), and what happens when the **proxy** reward
# model is optimised too hard (over-optimisation, Gao et al.,
# [arXiv 2210.10760](https://arxiv.org/abs/2210.10760)).
#
# ## The token-level MDP
#
# Generation is a Markov decision process: the state $s_t = (x, y_{<t})$ is the prompt and the
# response so far, the action is the next token $y_t \sim \pi_\theta(\cdot\mid s_t)$, and the
# episode ends at end-of-sequence. The reward model scores only the finished response, so the
# reward is sparse; InstructGPT adds a per-token KL penalty (Ziegler et al.,
# [arXiv 1909.08593](https://arxiv.org/abs/1909.08593)):
#
# $$r_t = -\beta_\text{KL}\,\log\frac{\pi_\text{old}(y_t\mid s_t)}{\pi_\text{ref}(y_t\mid s_t)}
# \;+\; \mathbb{1}[t = T]\; r_\phi(x, y).$$
#
# Sun's point: what makes PPO work here is not the sparse reward but **(almost) on-policy data
# with conservative updates**, which is why it behaves so differently from offline methods
# such as DPO (chapters 07–08) and why cheaper on-policy estimators (RLOO, GRPO) do as well.

# %%
# On Colab, install the companion's package first (harmless elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "survey-lib @ git+https://github.com/rl-enhanced-llms/companion"], check=True)

# %% tags=["parameters"]
profile = "tiny"  # "tiny" (CPU, the zoo) | "small" (CPU, SmolLM2) | "colab" | "gpu"; sizes per profile: survey_lib/sizes.py
seed = 0
n_pairs = 1000  # comparisons the proxy reward model is trained on (chapter 03)
eval_samples = 512  # fresh samples per evaluation point
# the online methods (PPO, RLOO, GRPO)
rl_steps = 30  # rollout/update iterations
batch_size = 64  # rollouts per iteration
learning_rate = 3e-4
kl_coef = 0.05  # beta_KL: PPO's initial per-token KL coefficient, RLOO's and GRPO's beta
kl_target = 2.0  # PPO's adaptive KL controller tracks this sequence KL (nats); None: fixed kl_coef
num_generations = 4  # responses per prompt for RLOO and GRPO
eval_every = 10  # evaluate PPO's policy every this many steps
# the ranking methods (RRHF, PRO)
ranking_prompts = 512
ranking_k = 4  # responses per prompt, ranked by the proxy
ranking_epochs = 2
# best-of-n and over-optimisation
bon_prompts = 256
bon_ns = "1,2,4,8,16,32,64"
sweep_pairs = 200  # a weaker proxy for the over-optimisation sweep, fitted to fewer comparisons (2 epochs)
sweep_eval_steps = "2,4,8,12,16,24,32,48,64,96,128,160"  # RLOO (no KL penalty) is evaluated after these iterations, the last ends it: dense early, where it moves fastest
sweep_learning_rate = 1e-3

# %%
import tempfile
from dataclasses import replace

import matplotlib.pyplot as plt
import torch

from survey_lib.book import Chapter
from survey_lib.generation import sample_completions
from survey_lib.models import load_model, trainable_copy
from survey_lib.online_rl import GroupConfig, train_group_policy
from survey_lib.overoptimization import best_of_n_at_most, best_of_n_kl, best_of_n_sweep, fit_gao
from survey_lib.plots import frontier_scatter, overoptimization_panel, ppo_training_curves
from survey_lib.policy_eval import evaluate_policy, evaluation_callback, evaluation_prompts, reference_baseline
from survey_lib.ppo import PPOConfig, train_ppo
from survey_lib.preference_data import candidate_rows, sample_candidates, sample_response_pairs
from survey_lib.preference_config import PreferenceConfig
from survey_lib.preference_training import train_preference
from survey_lib.reward_models import RewardConfig, train_reward_model
from survey_lib.widgets import frontier_explorer
from survey_lib.world.annotators import AnnotatorConfig, SimulatedAnnotators

chapter = Chapter("04_policy_optimization", globals())
if profile == "tiny":  # one thread ran the zoo's small matrices fastest on a 2-core CPU
    torch.set_num_threads(1)

# %% [markdown]
# ## 1. Stages one and two: the SFT policy and the proxy reward model
#
# The zoo's text model is our SFT policy. The proxy reward model is chapter 03's: the same
# trunk with a scalar head, fitted to `n_pairs` comparisons of SFT responses labelled by noisy
# simulated annotators. It never sees the gold reward, only those labels. The **critic** (PPO's
# value model) starts from the reward model, as in InstructGPT: the saved reward model loaded
# with a token-level head (`load_model(path, head="value")`) keeps its trunk and head, so its
# first value estimates are already on the reward's scale.

# %%
world = chapter.profile.world(seed)
sft, tokenizer = chapter.profile.load("text")
annotators = SimulatedAnnotators(world, AnnotatorConfig(temperature=0.2, disagreement=0.3, seed=seed))
rows = sample_response_pairs(sft, tokenizer, world, n_pairs, seed=seed).label(annotators)
torch.manual_seed(seed)
rm_model, rm_tokenizer = chapter.profile.load("text", head="reward")
proxy = train_reward_model(rm_model, RewardConfig(seed=seed), rows, tokenizer=rm_tokenizer)
reward_dir = tempfile.mkdtemp(prefix="reward-model-")
proxy.save_pretrained(reward_dir)

baseline = reference_baseline(sft, tokenizer, world, eval_samples, seed=seed + 1)
sft_gold, sft_proxy = float(baseline.gold.mean()), float(proxy(baseline.prompts, baseline.completions).mean())
prompts = list(world.prompts)
print(f"SFT policy: gold reward {sft_gold:.3f}, proxy reward {sft_proxy:.3f}")


def evaluate(policy) -> tuple[dict, list[tuple]]:
    """KL from the SFT policy, gold and proxy reward and win rate on fresh samples
    (`survey_lib.policy_eval`), and the first few samples, (prompt, response, gold), to read."""
    point = evaluate_policy(policy, sft, tokenizer, world, baseline, seed=seed + 3, proxy=proxy)
    return {k: point[k] for k in ("kl", "gold", "proxy", "win_rate")}, point["shown"]


def train_from_sft(train):
    """(policy, what `train(policy)` returned) for a fresh copy of the SFT policy. Every
    method starts from the same seed, so that the runs differ by their method only."""
    torch.manual_seed(seed)
    policy = trainable_copy(sft)
    return policy, train(policy)


# %% [markdown]
# ## 2. PPO, piece by piece
#
# `survey_lib/ppo.py` holds the whole algorithm in one loop. Each iteration:
#
# 1. **Rollouts.** Sample `batch_size` responses at temperature $\tau$; every log-probability
#    below is computed from logits divided by the same $\tau$, so the ratio is that of the
#    sampler. Tokens after the first end-of-sequence are masked out everywhere.
# 2. **Score.** $r_\phi(x, y)$ from the reward model; a response that hit the length limit
#    without end-of-sequence loses `missing_eos_penalty`.
# 3. **Per-token rewards** $r_t$ as above; optionally whitened.
# 4. **GAE** (Schulman et al., [arXiv 1506.02438](https://arxiv.org/abs/1506.02438)) with the
#    critic's values $V_t$: $\delta_t = r_t + \gamma V_{t+1} - V_t$,
#    $\hat A_t = \sum_l (\gamma\lambda)^l \delta_{t+l}$, returns $\hat R_t = \hat A_t + V_t$;
#    advantages whitened over the batch.
# 5. **Clipped updates**, `num_ppo_epochs` passes over minibatches, with
#    $\rho_t = \pi_\theta(y_t\mid s_t)/\pi_\text{old}(y_t\mid s_t)$:
#
# $$\mathcal{L}^\text{CLIP} = \mathbb{E}_t\big[\max(-\hat A_t\rho_t,\; -\hat A_t\,\mathrm{clip}(\rho_t, 1-\epsilon, 1+\epsilon))\big],
# \qquad
# \mathcal{L}^V = \tfrac12\,\mathbb{E}_t\big[\max\big((V_t - \hat R_t)^2, (V_t^\text{clip} - \hat R_t)^2\big)\big].$$
#
# 6. **Adaptive KL** (Ziegler et al.): $\beta_\text{KL} \leftarrow \beta_\text{KL}\,(1 + \mathrm{clip}(\mathrm{KL}/\mathrm{KL}_\text{target} - 1, \pm 0.2)\cdot n/H)$.
#
# Each detail from Huang et al.'s "N+ implementation details of RLHF with PPO"
# ([arXiv 2403.17031](https://arxiv.org/abs/2403.17031)) that we use is a switch of `PPOConfig`
# with a test in `tests/test_ppo.py`.

# %%
ppo_config = PPOConfig(steps=rl_steps, batch_size=batch_size, learning_rate=learning_rate, kl_coef=kl_coef,
                       kl_target=kl_target, kl_horizon=1000, missing_eos_penalty=1.0, seed=seed)


def run_ppo(config: PPOConfig, every: int | None = None):
    """PPO from the SFT policy with a fresh critic initialised from the reward model:
    (policy, training history, an evaluation every `every` steps)."""
    callback, path = evaluation_callback(sft, tokenizer, world, baseline, every=every, proxy=proxy, seed=seed + 3) if every else (None, [])

    def train(policy):
        critic, _ = load_model(reward_dir, chapter.profile.settings, head="value")
        return train_ppo(policy, config, prompts, tokenizer=tokenizer, reward=proxy, critic=critic, callback=callback,
                         progress=True)

    policy, result = train_from_sft(train)
    return policy, result.history, path


ppo_policy, ppo_history, ppo_path = run_ppo(ppo_config, every=eval_every)
ppo_point, ppo_samples = evaluate(ppo_policy)
frontier, samples = {"PPO": ppo_point}, {"PPO": ppo_samples}

fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
ppo_training_curves(axes, ppo_history, kl_target)
fig.tight_layout()
chapter.show(fig, "ppo_training")
print("PPO along training (fresh samples):")
for p in ppo_path:
    print(f"  step {p['step']:3d}: KL {p['kl']:5.2f}  gold {p['gold']:.3f}  proxy {p['proxy']:.3f}")
best = max(ppo_path, key=lambda p: p["gold"])
print(f"PPO's best gold reward {best['gold']:.3f} at KL {best['kl']:.2f} (SFT: {sft_gold:.3f})")
print("samples:", [response for _, response, _ in ppo_samples[:4]])

# %% [markdown]
# The critic starts from the reward model, so its value loss is small from the first
# iterations; the ratio is clipped for a small fraction of tokens per pass, which is the
# conservative update at work. Gold reward (which PPO never sees) rises with the proxy.
#
# ## 3. Which details matter? An ablation
#
# We switch off one detail at a time, same seed, same budget: the **KL penalty**
# ($\beta_\text{KL} = 0$, no controller), **advantage whitening**, and **value clipping**.

# %%
ablations = {
    "no KL penalty": dict(kl_coef=0.0, kl_target=None),
    "no advantage whitening": dict(whiten_advantages=False),
    "no value clipping": dict(cliprange_value=None),
}
ablation = {"PPO (all details)": frontier["PPO"]}
for name, change in ablations.items():
    policy, _, _ = run_ppo(replace(ppo_config, **change))
    ablation[name], _ = evaluate(policy)
    del policy
for name, p in ablation.items():
    print(f"{name:24s} KL {p['kl']:5.2f}  gold {p['gold']:.3f}  proxy {p['proxy']:.3f}")
print(f"without the KL penalty: {ablation['no KL penalty']['kl'] / frontier['PPO']['kl']:.1f} times PPO's KL, "
      f"{ablation['no KL penalty']['gold'] - frontier['PPO']['gold']:+.2f} gold reward against PPO's")

# %% [markdown]
# Without the KL penalty the policy travels much further from the SFT model in the same
# number of updates (the factor is printed above). Whether the extra distance buys gold
# reward is luck of the run: on some seeds it gains, on others the policy runs so far that
# its gold reward falls below PPO's, the over-optimisation of section 7 reached by accident.
# Whitening and value clipping change little at this scale (compare their rows with PPO's):
# the rewards are already of order one and the critic starts from the reward model. Huang et
# al. report such details matter most at scale, with raw rewards of arbitrary scale.
#
# ## 4. Without a critic: RLOO and GRPO
#
# Both sample $k$ responses per prompt and baseline each with the others, dropping the value
# model and GAE:
#
# - **RLOO** (Ahmadian et al., [arXiv 2402.14740](https://arxiv.org/abs/2402.14740)): the whole
#   response is one action; $R_i = r_\phi(x, y_i) - \beta\sum_t \log\frac{\pi_\text{old}}{\pi_\text{ref}}$ and
#   $A_i = R_i - \frac{1}{k-1}\sum_{j\neq i} R_j$, then REINFORCE: $-A_i\log\pi_\theta(y_i\mid x)$.
# - **GRPO** (Shao et al., [arXiv 2402.03300](https://arxiv.org/abs/2402.03300)):
#   $A_i = (r_i - \mathrm{mean}(r))/\mathrm{std}(r)$ over the group, applied to every token with
#   PPO's clipped ratio, and the KL to the reference moved from the reward into the loss with
#   the estimator $\frac{\pi_\text{ref}}{\pi_\theta} - \log\frac{\pi_\text{ref}}{\pi_\theta} - 1$.
#
# Both reuse PPO's rollout code and reward interface (`survey_lib/online_rl.py`).

# %%
group_config = GroupConfig(steps=rl_steps, batch_size=batch_size, learning_rate=learning_rate, beta=kl_coef,
                           num_generations=num_generations, seed=seed)
for method in ("rloo", "grpo"):
    policy, _ = train_from_sft(lambda policy: train_group_policy(
        policy, group_config, prompts, tokenizer=tokenizer, reward=proxy, method=method, progress=True))
    frontier[method.upper()], samples[method.upper()] = evaluate(policy)
    del policy

# %% [markdown]
# ## 5. Without RL: RRHF and PRO rank sampled responses
#
# Both sample `ranking_k` responses per prompt from the SFT policy once, rank them by the
# proxy, and fit the policy's length-normalised log-likelihoods $p_i = \log\pi(y_i\mid x)/|y_i|$ to
# the ranking, plus fine-tuning on the best response:
#
# - **RRHF** (Yuan et al., [arXiv 2304.05302](https://arxiv.org/abs/2304.05302)):
#   $\sum_{r_i < r_j}\max(0, p_i - p_j)$, a pairwise hinge.
# - **PRO** (Song et al., [arXiv 2306.17492](https://arxiv.org/abs/2306.17492)): the Plackett–Luce
#   likelihood of the whole ranking, $-\sum_j \log\frac{\exp(p_j/T_j^j)}{\sum_{i\ge j}\exp(p_i/T_j^i)}$,
#   with temperatures $1/T_j^i = r_j - r_i$ from the reward gaps.

# %%
ranking_pool = evaluation_prompts(world, ranking_prompts)
repeated = [p for p in ranking_pool for _ in range(ranking_k)]
candidates = sample_candidates(sft, tokenizer, ranking_pool, ranking_k, seed=seed + 4)
ranked_rows = candidate_rows(ranking_pool, candidates, proxy(repeated, candidates))
for loss in ("rrhf", "pro"):
    ranking_config = PreferenceConfig(loss=loss, learning_rate=learning_rate, epochs=ranking_epochs, seed=seed)
    policy, _ = train_from_sft(lambda policy: train_preference(policy, ranking_config, ranked_rows, tokenizer=tokenizer))
    frontier[loss.upper()], samples[loss.upper()] = evaluate(policy)
    del policy

# %% [markdown]
# ## 6. Best-of-n, and the frontier
#
# The simplest optimiser needs no training: draw $n$ responses, keep the proxy's favourite.
# Its KL from the policy is known in closed form, $\mathrm{KL}_\text{BoN} = \log n - \frac{n-1}{n}$
# (Stiennon et al., [arXiv 2009.01325](https://arxiv.org/abs/2009.01325)), which makes it the
# yardstick for every other method: a method whose point lies below the best-of-n curve buys
# less gold reward per nat of KL than picking the best of a few samples.

# %%
ns = [int(n) for n in bon_ns.split(",")]
bon_pool_prompts = evaluation_prompts(world, bon_prompts)
bon_pool = sample_completions(sft, tokenizer, [p for p in bon_pool_prompts for _ in range(max(ns))], seed=seed + 5)
bon = best_of_n_sweep(sft, tokenizer, bon_pool_prompts, proxy, world.gold_reward, ns, completions=bon_pool)
trained = dict(frontier)  # the methods that train a policy; best-of-n is the curve they are read against
bon_point = best_of_n_at_most(bon, 16)  # best-of-16, or the largest smaller n in bon_ns
frontier[f"best-of-{bon_point['n']}"] = {k: bon_point[k] for k in ("kl", "gold", "proxy")}

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
for ax, key in ((ax1, "gold"), (ax2, "proxy")):
    ax.plot([p["kl"] for p in bon], [p[key] for p in bon], "k.--", lw=1, label=f"best-of-n, n = {min(ns)}…{max(ns)}")
    ax.plot([0] + [p["kl"] for p in ppo_path], [sft_gold if key == "gold" else sft_proxy] + [p[key] for p in ppo_path],
            "C0-", lw=1, alpha=0.6, label="PPO along training")
    frontier_scatter(ax, trained, key)
    ax.set(xlabel="KL(π || π_SFT), nats", ylabel=f"mean {key} reward", title=f"{key.capitalize()} reward vs KL")
    ax.legend(fontsize=7)
fig.tight_layout()
chapter.show(fig, "frontier")
print(f"SFT: gold {sft_gold:.3f}, proxy {sft_proxy:.3f}")
for name, p in frontier.items():
    print(f"{name:12s} KL {p['kl']:5.2f}  gold {p['gold']:.3f}  proxy {p['proxy']:.3f}")

# %% [markdown]
# Numbers hide what a policy writes. Tick the methods to show and pick one to read its samples
# (headless, this cell prints one sample per method):

# %%
frontier_explorer(trained, samples)

# %% [markdown]
# **Reading the frontier.** Every method raises the gold reward above the SFT policy's
# while optimising only the proxy. How far each one moves in its budget differs (the table
# above), so read each point against the best-of-n curve rather than against the others.
# The online methods (PPO, RLOO, GRPO) keep sampling from the policy they train; the ranking
# methods (RRHF, PRO) only re-weight what the SFT policy sampled, once, and never see what
# the policy they train writes. Best-of-n is remarkably strong for its KL, which is
# why it is a standard baseline (and, distilled, a training method: chapter 05). The points
# are single runs at one seed; the bands in `tests/test_chapters.py` state what holds across
# seeds.
#
# ## 7. Over-optimisation: the proxy stays high, the gold reward does not
#
# Now we push hard against a **weaker proxy**, a reward model fitted to only `sweep_pairs`
# comparisons for two epochs, a few optimiser steps (Gao et al. found that reward models trained
# on less data are over-optimised sooner): RLOO with **no KL penalty** and a larger step size
# for up to 160 iterations, evaluated after each of `sweep_eval_steps`; and best-of-n on the same
# pool of samples as above, now ranked by the weak proxy. The gold peak comes anywhere from the
# first few iterations (on some seeds the policy has left the SFT policy's text by iteration 16)
# to past the middle of the run (over 80 iterations some seeds were still climbing), so the
# evaluations are dense at the start and the run is long. Gao et al. measure optimisation by $d = \sqrt{\mathrm{KL}}$ and found the gold-reward
# gain follows
#
# $$R_\text{BoN}(d) = d(\alpha - \beta d), \qquad R_\text{RL}(d) = d(\alpha - \beta\log d).$$
#
# Both are linear in $(\alpha, \beta)$, so `fit_gao` solves the least-squares fit exactly.

# %%
torch.manual_seed(seed)
weak_model, weak_tokenizer = chapter.profile.load("text", head="reward")
weak_proxy = train_reward_model(weak_model, RewardConfig(seed=seed), rows[:sweep_pairs], tokenizer=weak_tokenizer)
weak_bon = best_of_n_sweep(sft, tokenizer, bon_pool_prompts, weak_proxy, world.gold_reward, ns, completions=bon_pool)
eval_steps = [int(n) for n in sweep_eval_steps.split(",")]
callback, sweep = evaluation_callback(sft, tokenizer, world, baseline, every=eval_steps, proxy=weak_proxy, seed=seed + 3)
sweep_config = GroupConfig(steps=max(eval_steps), batch_size=batch_size, learning_rate=sweep_learning_rate, beta=0.0,
                           num_generations=num_generations, seed=seed)
train_from_sft(lambda policy: train_group_policy(policy, sweep_config, prompts, tokenizer=tokenizer, reward=weak_proxy,
                                                 method="rloo", callback=callback, progress=True))
weak_sft_proxy = float(weak_proxy(baseline.prompts, baseline.completions).mean())
rl_points = [{"kl": 0.0, "gold": sft_gold, "proxy": weak_sft_proxy}] + sweep
rl_fit = fit_gao([p["kl"] for p in rl_points], [p["gold"] - sft_gold for p in rl_points], "rl")
bon_fit = fit_gao([p["kl"] for p in weak_bon], [p["gold"] - weak_bon[0]["gold"] for p in weak_bon], "bon")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
overoptimization_panel(ax1, rl_points, rl_fit, "rl", "RL on the weak proxy (RLOO, no KL penalty)")
ax1.set_ylabel("reward gain over SFT")
overoptimization_panel(ax2, weak_bon, bon_fit, "bon", f"Best-of-n on the weak proxy (n = {min(ns)}…{max(ns)})")
fig.tight_layout()
chapter.show(fig, "overoptimization")
peak = max(rl_points, key=lambda p: p["gold"])  # the SFT policy's own point counts: some runs only fall
print(f"RL: gold peaks at {peak['gold']:.3f} (KL {peak['kl']:.2f}, proxy {peak['proxy']:.3f}); "
      f"at the end gold {sweep[-1]['gold']:.3f} (KL {sweep[-1]['kl']:.2f}, proxy {sweep[-1]['proxy']:.3f})")
print(f"fits: RL α={rl_fit['alpha']:.3f} β={rl_fit['beta']:.3f} R²={rl_fit['r2']:.2f} (peak at d={rl_fit['d_peak']:.2f}); "
      f"BoN α={bon_fit['alpha']:.3f} β={bon_fit['beta']:.3f} R²={bon_fit['r2']:.2f} (peak at d={bon_fit['d_peak']:.2f})")
print(f"best-of-{max(ns)}, the largest n measured, is only KL {best_of_n_kl(max(ns)):.2f} nats "
      f"(d = {best_of_n_kl(max(ns)) ** 0.5:.2f}) from the SFT policy")

# %% [markdown]
# The proxy reward stays high (at the very end it may sag a little, far less than the gold
# reward falls); the gold reward climbs with it, peaks, and then falls as
# the policy drifts into text the weak reward model over-rates (in the text world, repetitive
# and disfluent text, which the gold reward's repetition penalty and fluency gate punish).
# How hard it falls varies from seed to seed (the peak and the last evaluation are printed
# above): on some seeds the gold reward ends far below the SFT policy's, on others just under
# its peak. The functional form bends the same way and explains most of the RL path's variance, though
# how much varies with the seed (its R² is printed above): without a KL penalty the policy can
# jump several nats between two evaluations. Best-of-n
# moves far more slowly in KL, which grows only as $\log n$: even the largest n measured stays
# a few nats from the SFT policy, and whether its fitted curve peaks within the n measured or
# only beyond them changes with the seed (compare the fit's peak d with the largest n's). This
# is the case for a KL penalty, for early stopping, and for the remedies of chapter 03
# (ensembles, more and better comparisons): none of them moves the proxy, all of them protect
# the gold reward.

# %%
chapter.finish(
    {
        "sft_gold": sft_gold,
        "sft_proxy": sft_proxy,
        "frontier": frontier,
        "ppo_best": {"kl": best["kl"], "gold": best["gold"], "proxy": best["proxy"]},
        "ablation": ablation,
        "overoptimization": {
            "peak": {k: peak[k] for k in ("kl", "gold", "proxy")},
            "start": rl_points[0],
            "final": {k: sweep[-1][k] for k in ("kl", "gold", "proxy")},
            "rl_fit": rl_fit,
            "bon_fit": bon_fit,
        },
    },
    {"ppo_path": ppo_path, "rl_sweep": sweep, "best_of_n": bon, "best_of_n_weak_proxy": weak_bon, "ppo_history": ppo_history},
)
