# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · RL for reasoning
#
# *Companion to §3 of "Reinforcement Learning Enhanced LLMs: A Survey" (Wang et al.,
# [arXiv 2412.10400](https://arxiv.org/abs/2412.10400)), on o1, Kimi k1.5
# ([2501.12599](https://arxiv.org/abs/2501.12599)) and DeepSeek-R1
# ([2501.12948](https://arxiv.org/abs/2501.12948)), and to the year of GRPO variants that followed.*
#
# The reasoning models of §3 are trained by RL against a **verifiable reward**: a checker says
# whether the final answer is right, and nothing scores the work that led there. DeepSeek-R1
# does it with GRPO (from DeepSeekMath, [2402.03300](https://arxiv.org/abs/2402.03300)): sample
# $G$ answers per problem, score each, and push up the ones that beat their group. Since the
# survey, the field has argued about two things, and this chapter measures both:
#
# | | question | papers |
# |---|---|---|
# | 1 | how to normalise and clip GRPO: per-response length normalisation, the group's std, the clip range, sequence-level weights | Dr. GRPO [2503.20783](https://arxiv.org/abs/2503.20783), DAPO [2503.14476](https://arxiv.org/abs/2503.14476), GSPO [2507.18071](https://arxiv.org/abs/2507.18071), CISPO [2506.13585](https://arxiv.org/abs/2506.13585), REINFORCE++ [2501.03262](https://arxiv.org/abs/2501.03262) |
# | 2 | does RL teach new reasoning, or sharpen what the model already samples? | Yue et al. [2504.13837](https://arxiv.org/abs/2504.13837); entropy collapse, [2505.22617](https://arxiv.org/abs/2505.22617) |
#
# and two recipes of §3: R1-Zero (RL straight from a base model) and Kimi k1.5's length penalty.

# %%
# On Colab, install the companion's package first (harmless elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "survey-lib @ git+https://github.com/rl-enhanced-llms/companion"], check=True)

# %% tags=["parameters"]
profile = "tiny"  # "tiny" (CPU, the zoo); sizes per profile: survey_lib/sizes.py
seed = 0
methods = "all"  # comma-separated names from survey_lib.online_rl.GROUP_RECIPES, or "all"
steps = 10  # updates per method
batch_size = 64  # responses per update
num_generations = 8  # responses per problem (the group)
num_iterations = 2  # updates per batch, so that the clip matters
learning_rate = 3e-4
eval_every = 5  # steps between accuracy measurements during training
train_problems = 1024
eval_problems = 256  # held-out problems, one sample each, for every accuracy
pass_k_problems = 64  # held-out problems for pass@k ...
pass_k_samples = 32  # ... with this many samples each
format_weight = 0.5  # R1-Zero: reward = right + format_weight * (work written in the format)
length_reward_coef = 0.5  # Kimi k1.5's length reward, for its experiment
verifier_problems = 256  # training problems for the outcome and process reward models ...
verifier_samples = 4  # ... with this many SFT answers each
verifier_epochs = 4
best_of_problems = 128  # held-out problems for best-of-n selection ...
best_of = 32  # ... with this many answers each (n = 1, 2, 4, ... up to it; at least 16)

# %%
import matplotlib.pyplot as plt
import numpy as np

from survey_lib.book import Chapter, select_methods
from survey_lib.generation import sample_completions
from survey_lib.models import trainable_copy
from survey_lib.online_rl import GROUP_RECIPES, group_recipe, train_group_policy
from survey_lib.reward_models import RewardConfig, train_process_reward_model, train_reward_model
from survey_lib.stats import best_of_n_accuracy, difference_interval, pass_at_k

chapter = Chapter("09_reasoning_rl", globals())
headline = {}

# %% [markdown]
# ## 1. A task where reasoning has length
#
# Additions of up to three digits, answered with **written work**, one column at a time from the
# right, then the answer after `>`: `47+85=` → `7+5=12,4+8+1=13>132`. The policy
# (`tiny-columns-lm`) was pre-trained on work with a pupil's errors planted in it: forgotten
# carries, slips, a quarter of the answers given with no work at all, and repairs (`~` and the
# column again) after some errors. So its answers can be long or short, right or wrong. The
# reward is the **exact checker** of the final answer; nothing checks the work.

# %%
task = chapter.profile.verifiable_task()
sft, tokenizer = chapter.profile.load("reasoning")
rng = np.random.default_rng(seed)
train = [task.prompt(a, b) for a, b in task.sample_problems(train_problems, rng)]
held_out = [task.prompt(a, b) for a, b in task.sample_problems(eval_problems, rng)]


def answers(policy, prompts, sample_seed=seed + 1):
    return sample_completions(policy, tokenizer, prompts, seed=sample_seed)


def measure(policy) -> dict:
    """Per held-out problem: right or not, work written or not, length (one sample each)."""
    out = answers(policy, held_out)
    return {"right": task.verify(held_out, out), "worked": task.well_formed(out),
            "length": np.array([len(c) for c in out], dtype=float), "samples": out}


before = measure(sft)
for prompt, answer, right in list(zip(held_out, before["samples"], before["right"]))[:6]:
    print(f"{prompt:9s} {answer:32s} {'right' if right else 'wrong'}")
print(f"SFT: {before['right'].mean():.1%} right, work written in {before['worked'].mean():.0%}, "
      f"{before['length'].mean():.1f} characters on average")


# %% [markdown]
# ## 2. The GRPO family: what each normalises and clips
#
# For a problem $q$ with answers $o_1,\dots,o_G$ and rewards $r_i$, GRPO's advantage is
# $\hat A_i = (r_i - \operatorname{mean}(r)) / \operatorname{std}(r)$, shared by every token of
# $o_i$, and its loss per token is PPO's clipped surrogate with the weight
# $w_{i,t} = \pi_\theta(o_{i,t}\mid q, o_{i,<t}) / \pi_{\text{old}}(o_{i,t}\mid q, o_{i,<t})$:
#
# $$\mathcal L_{\text{GRPO}} = -\frac1G\sum_{i=1}^G \frac1{|o_i|}\sum_{t=1}^{|o_i|}
# \min\big(w_{i,t}\hat A_i,\ \operatorname{clip}(w_{i,t}, 1-\varepsilon, 1+\varepsilon)\hat A_i\big)
# + \beta\,\mathrm{KL}_{k3}.$$
#
# The variants change one piece each (`survey_lib.group_losses`, checked against TRL's
# `GRPOTrainer` on the same batches):
#
# | method | advantage | weight and clip | average over tokens |
# |---|---|---|---|
# | GRPO | $(r - \bar r)/\operatorname{std}_\text{group}$ | per token, $[1-\varepsilon, 1+\varepsilon]$ | per answer, then over answers ($1/\lvert o_i\rvert$) |
# | Dr. GRPO | $r - \bar r$ (no std) | per token | sum over tokens / constant (no $1/\lvert o_i\rvert$) |
# | DAPO | $(r - \bar r)/\operatorname{std}$, groups with equal rewards dropped and resampled | per token, clip-higher $[1-0.2, 1+0.28]$ | over all tokens of the batch |
# | GSPO | $(r - \bar r)/\operatorname{std}$ | one per answer: $\exp(\frac1{\lvert o_i\rvert}\sum_t \log w_{i,t})$, clipped to $[1-3\cdot10^{-4}, 1+4\cdot10^{-4}]$ | per answer |
# | CISPO | $(r - \bar r)/\operatorname{std}$ | $\operatorname{sg}(\min(w, 5))\,\hat A \log\pi$: clipped and detached, no token loses its gradient | over all tokens |
# | REINFORCE++ | $r - \bar r$ minus the KL to go, normalised over the whole batch | per token | over all tokens |
# | RLOO | $r_i$ minus the mean of the other answers | per answer (the product of token weights) | per answer |
#
# Dr. GRPO's argument: with $1/\lvert o_i\rvert$, a long *wrong* answer is pushed down less per
# token than a short one, so wrong answers drift longer. Every method below gets the same
# number of updates on the same batches' size; DAPO's dynamic sampling generates more answers
# for them, so its accuracy is read at the same number of **generations** as the others.

# %%
class CountedReward:
    """The checker, counting the answers it scores: the generations so far."""

    def __init__(self):
        self.generations = 0

    def __call__(self, prompts, completions):
        self.generations += len(completions)
        return task.verify(prompts, completions)


def accuracy_curve(reward, points):
    def callback(step, model):  # the last step's point is `measure`'s, below
        if (step + 1) % eval_every == 0 and step + 1 < steps:
            points.append({"step": step + 1, "generations": reward.generations,
                           "accuracy": float(task.verify(held_out, answers(model, held_out)).mean())})
    return callback


runs = {}
for name in select_methods(GROUP_RECIPES, methods):
    method, config = group_recipe(name, steps=steps, batch_size=batch_size, num_generations=num_generations,
                                  num_iterations=num_iterations, learning_rate=learning_rate, seed=seed)
    policy, reward = trainable_copy(sft), CountedReward()
    points = [{"step": 0, "generations": 0, "accuracy": float(before["right"].mean())}]
    result = train_group_policy(policy, config, train, tokenizer=tokenizer, reward=reward, method=method,
                                callback=accuracy_curve(reward, points), progress=True)
    after = measure(policy)
    points.append({"step": steps, "generations": reward.generations, "accuracy": float(after["right"].mean())})
    runs[name] = {"policy": policy, "history": result.history, "points": points, "after": after}

# %% [markdown]
# Each method's accuracy on the held-out problems, at the budget of generations every method
# got ($\text{steps}\times\text{batch size}$), against the SFT model's on the same problems
# (the interval is a paired bootstrap over problems):

# %%
budget = steps * batch_size
accuracy, gain = {"SFT": float(before["right"].mean())}, {}
for name, run in runs.items():
    reached = [p for p in run["points"] if p["generations"] <= budget][-1]
    accuracy[name] = reached["accuracy"]
    gain[name] = difference_interval(run["after"]["right"], before["right"], paired=True, seed=seed)
    print(f"{name:12s} {accuracy[name]:.1%} right at {reached['generations']} generations; after all {steps} updates "
          f"({run['points'][-1]['generations']} generations) {gain[name]['estimate']:+.1%} over SFT, 95% interval "
          f"[{gain[name]['low']:+.1%}, {gain[name]['high']:+.1%}]")
headline["accuracy"], headline["accuracy_gain"] = accuracy, gain

fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, run in runs.items():
    ax.plot([p["generations"] for p in run["points"]], [p["accuracy"] for p in run["points"]], marker="o", label=name)
ax.axvline(budget, color="grey", lw=0.8, ls=":")
ax.set(xlabel="answers generated", ylabel="held-out accuracy", title="Accuracy over training, per method")
ax.legend(fontsize=8)
chapter.show(fig, "accuracy")

# %% [markdown]
# Nearly every method raises accuracy well beyond the evaluation's noise in ten updates: RL
# sharpens a policy that was already right about two times in three. (On one seed of the eight
# tried, 5, CISPO gained nothing while the others gained a quarter; its entropy and length
# moved as theirs did, and we have not found why.) The differences between methods are
# mostly within the intervals, with two exceptions that follow from their settings. GSPO's
# clip range ($3\cdot10^{-4}$ around a sequence weight) stops most of each batch's second
# update, so it tends to gain least. DAPO's dynamic sampling drops the groups that are all
# right, and as the policy improves those are most groups: it spent over twice the answers of
# the others for its ten updates, and at their budget of generations it is behind most of them.

# %% [markdown]
# ## 3. Length and entropy over training
#
# Two dynamics the 2025 papers watch: the **length** of the answers (R1's grew as it learnt to
# write more work; Dr. GRPO says GRPO's $1/\lvert o_i\rvert$ also lets wrong answers grow) and
# the policy's **entropy** on its own answers, which collapses as RL sharpens the policy
# (Cui et al., [2505.22617](https://arxiv.org/abs/2505.22617)); DAPO's clip-higher is meant to
# slow that collapse.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
for name, run in runs.items():
    left.plot([h["response_length"] for h in run["history"]], label=name)
    right.plot([h["entropy"] for h in run["history"]], label=name)
left.set(xlabel="update", ylabel="tokens per answer", title="Answer length")
right.set(xlabel="update", ylabel="nats per token", title="Policy entropy on its answers")
right.legend(fontsize=8)
chapter.show(fig, "length_entropy")

length, entropy = {}, {}
for name, run in runs.items():
    history, after = run["history"], run["after"]
    wrong = after["right"] == 0
    length[name] = {"start": history[0]["response_length"], "end": history[-1]["response_length"],
                    "wrong_answers_end": float(after["length"][wrong].mean()) if wrong.any() else None}
    entropy[name] = {"start": history[0]["entropy"], "end": history[-1]["entropy"]}
    print(f"{name:12s} length {length[name]['start']:.1f} -> {length[name]['end']:.1f} tokens "
          f"(wrong answers at the end: {length[name]['wrong_answers_end'] or float('nan'):.1f} characters); "
          f"entropy {entropy[name]['start']:.3f} -> {entropy[name]['end']:.3f}")
headline["length"], headline["entropy"] = length, entropy

# %% [markdown]
# Every method makes the answers longer, because the policy learns to write its work instead of
# answering at once; and every method collapses the entropy. Two of the papers' claims do
# not show at this scale. Dr. GRPO's length bias: GRPO's wrong answers are not longer than Dr.
# GRPO's at the end (on most seeds they are shorter; with a tenth of 256 answers wrong, this
# number is noisy). DAPO's clip-higher: its entropy falls as far as GRPO's. Both effects are
# reported on long chains of thought at 7B and beyond; here the answers are 20-30 tokens and
# ten updates take the policy most of the way.

# %% [markdown]
# ## 4. Does RL teach new answers, or sharpen old ones? pass@k
#
# Yue et al. compare a base model and its RL-trained version by **pass@k**: the chance that at
# least one of $k$ samples is right, estimated without bias from $n \ge k$ samples with $c$
# right as $1 - \binom{n-c}{k}/\binom{n}{k}$ (Chen et al., [2107.03374](https://arxiv.org/abs/2107.03374)).
# They find RL raises pass@1 while the base model catches up or overtakes at large $k$: RL
# would then choose among answers the base could already sample, not find new ones. The SFT
# model against its GRPO-trained version:

# %%
pass_prompts = held_out[:pass_k_problems]
ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= pass_k_samples]
rl_name = "GRPO" if "GRPO" in runs else next(iter(runs))
pass_at = {}
for name, policy in (("SFT", sft), (rl_name, runs[rl_name]["policy"])):
    repeated = [p for p in pass_prompts for _ in range(pass_k_samples)]
    right = task.verify(repeated, answers(policy, repeated, seed + 2)).reshape(pass_k_problems, pass_k_samples)
    pass_at[name] = {k: float(pass_at_k(right, k).mean()) for k in ks}
fig, ax = plt.subplots(figsize=(5.5, 3.6))
for name, values in pass_at.items():
    ax.plot(ks, list(values.values()), marker="o", label=name)
ax.set(xscale="log", xlabel="k", ylabel="pass@k", title="pass@k: SFT against RL")
ax.set_xticks(ks, [str(k) for k in ks])
ax.legend()
chapter.show(fig, "pass_at_k")
for k in ks:
    print(f"pass@{k:<2d}  SFT {pass_at['SFT'][k]:.3f}   {rl_name} {pass_at[rl_name][k]:.3f}")
headline["pass_at_k"] = pass_at

# %% [markdown]
# RL lifts pass@1 by about a quarter, and the SFT model catches up by $k \approx 8$-$16$: every
# problem here was within the SFT model's reach, and RL concentrated the probability on answers
# it could already write. Yue et al.'s crossover, the base model *overtaking* at large $k$,
# needs problems that RL stops solving; with a checker this close to the pre-training
# distribution, none are lost, and both reach 1.

# %% [markdown]
# ## 5. R1-Zero: RL straight from a base model
#
# DeepSeek-R1-Zero skipped SFT: RL from the base model with a reward for the right answer plus
# one for the format. Our base model (`tiny-columns-base-lm`) saw written work in 3% of its
# corpus and answers almost always without it. Rewarded for `right + format_weight × (work
# written)`, does RL make it write its work, and does that make it right as often as the SFT
# model trained with RL (section 2's GRPO)?

# %%
base, _ = chapter.profile.load("reasoning-base")
base_before = measure(base)
method, config = group_recipe("GRPO", steps=steps, batch_size=batch_size, num_generations=num_generations,
                              num_iterations=num_iterations, learning_rate=learning_rate, seed=seed)
train_group_policy(base, config, train, tokenizer=tokenizer, method=method, progress=True,
                   reward=lambda prompts, completions: task.verify(prompts, completions)
                   + format_weight * task.well_formed(completions))
base_after = measure(base)
sft_rl = runs[rl_name]["after"]
headline["r1_zero"] = {
    "base": {"accuracy": float(base_before["right"].mean()), "worked": float(base_before["worked"].mean())},
    "r1_zero": {"accuracy": float(base_after["right"].mean()), "worked": float(base_after["worked"].mean())},
    "sft_then_rl": {"accuracy": float(sft_rl["right"].mean()), "worked": float(sft_rl["worked"].mean())},
    "sft_then_rl_minus_r1_zero": difference_interval(sft_rl["right"], base_after["right"], paired=True, seed=seed),
}
for name, values in headline["r1_zero"].items():
    if "accuracy" in values:
        print(f"{name:12s} {values['accuracy']:.1%} right, work written in {values['worked']:.0%}")

# %% [markdown]
# RL from the base model raises its accuracy, but by sharpening its answers with no work: in
# ten updates it almost never writes work, although work was rewarded. A base that writes work
# in a few percent of its answers gives a group of eight a written answer to reinforce only
# now and then. R1-Zero's emergence of long reasoning took thousands of steps from a base that
# already reasoned often; SFT on worked solutions first (the route of DeepSeek-R1 itself, with
# its cold-start data) is far ahead at this budget.

# %% [markdown]
# ## 6. Kimi k1.5's length penalty
#
# Kimi k1.5 adds a length reward within each group: with $\lambda_i = \tfrac12 -
# \frac{\lvert o_i\rvert - \min_j \lvert o_j\rvert}{\max_j \lvert o_j\rvert - \min_j \lvert o_j\rvert}$,
# a right answer gets $\lambda_i$ and a wrong one $\min(0, \lambda_i)$: the shorter right
# answers gain. GRPO with it (`length_reward_coef`) against GRPO without:

# %%
policy = trainable_copy(sft)
method, config = group_recipe("GRPO", steps=steps, batch_size=batch_size, num_generations=num_generations,
                              num_iterations=num_iterations, learning_rate=learning_rate, seed=seed,
                              length_reward_coef=length_reward_coef)
train_group_policy(policy, config, train, tokenizer=tokenizer, reward=task.verify, method=method, progress=True)
penalised = measure(policy)
headline["length_penalty"] = {
    "without": {"accuracy": float(sft_rl["right"].mean()), "length": float(sft_rl["length"].mean()),
                "worked": float(sft_rl["worked"].mean())},
    "with": {"accuracy": float(penalised["right"].mean()), "length": float(penalised["length"].mean()),
             "worked": float(penalised["worked"].mean())},
    "length_change": difference_interval(penalised["length"], sft_rl["length"], paired=False, seed=seed),
}
for name in ("without", "with"):
    values = headline["length_penalty"][name]
    print(f"GRPO {name:7s} the length reward: {values['accuracy']:.1%} right, {values['length']:.1f} characters, "
          f"work written in {values['worked']:.0%}")

# %% [markdown]
# The length reward does shorten the answers, and here it costs accuracy: the shortest answers
# the policy can write skip the work, and answers without work are wrong more often. Kimi k1.5
# warms the penalty up and applies it to a model whose long chains are mostly redundant; on a
# task where the work *is* the reasoning, a length reward trades accuracy for brevity.

# %% [markdown]
# ## 7. Process against outcome reward models
#
# Lightman et al. ([2305.20050](https://arxiv.org/abs/2305.20050)) trained two verifiers on the
# same solutions: an **outcome** reward model (ORM) that predicts whether the final answer is
# right, and a **process** reward model (PRM) that predicts, for each step, whether that step
# is right; then they used each to pick the best of $n$ sampled solutions. Here the step labels
# come from the exact checker, applied to each column (`ColumnAdditionTask.step_labels`), where
# Lightman et al. paid annotators and Math-Shepherd ([2312.08935](https://arxiv.org/abs/2312.08935))
# estimated them by rollouts. Both verifiers start from the policy's trunk with a scalar head
# and train for the same epochs on the same SFT answers; the PRM reads one score per step at
# the step's last token, and a solution scores as its weakest step.

# %%
verifier_prompts = [p for p in train[:verifier_problems] for _ in range(verifier_samples)]
verifier_answers = answers(sft, verifier_prompts, seed + 3)
orm_rows = [{"prompt": p, "completion": c, "label": bool(r)}
            for p, c, r in zip(verifier_prompts, verifier_answers, task.verify(verifier_prompts, verifier_answers))]
prm_rows = [{"prompt": p, "completions": steps, "labels": labels}
            for p, (steps, labels) in ((p, task.step_labels(p, c)) for p, c in zip(verifier_prompts, verifier_answers))]
verifier_config = RewardConfig(epochs=verifier_epochs, batch_size=64, learning_rate=1e-3, seed=seed)
orm = train_reward_model(chapter.profile.load("reasoning", head="reward")[0], verifier_config, orm_rows,
                         tokenizer=tokenizer, progress=True)
prm = train_process_reward_model(chapter.profile.load("reasoning", head="reward")[0], verifier_config, prm_rows,
                                 tokenizer=tokenizer, progress=True)

candidates = [p for p in held_out[:best_of_problems] for _ in range(best_of)]
sampled = answers(sft, candidates, seed + 4)
right = task.verify(candidates, sampled).reshape(-1, best_of)
scores = {"ORM": orm(candidates, sampled),
          "PRM": prm.score(candidates, [task.step_labels(p, c)[0] for p, c in zip(candidates, sampled)])}
ns = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= best_of]
chosen = {name: {n: best_of_n_accuracy(right, s.reshape(-1, best_of), n) for n in ns} for name, s in scores.items()}
prm_vs_orm = {name: {n: float(v.mean()) for n, v in by_n.items()} for name, by_n in chosen.items()}
prm_vs_orm["PRM_minus_ORM_at_16"] = difference_interval(chosen["PRM"][16], chosen["ORM"][16], paired=True, seed=seed)
fig, ax = plt.subplots(figsize=(5.5, 3.6))
for name in scores:
    ax.plot(ns, list(prm_vs_orm[name].values()), marker="o", label=name)
ax.plot(ns, [float(right[:, :n].any(1).mean()) for n in ns], ls=":", color="grey", label="some answer right (pass@n)")
ax.set(xscale="log", xlabel="n answers to choose from", ylabel="accuracy of the chosen answer",
       title="Best-of-n: process vs outcome reward model")
ax.set_xticks(ns, [str(n) for n in ns])
ax.legend(fontsize=8)
chapter.show(fig, "prm_vs_orm")
for n in ns:
    print(f"best of {n:2d}: ORM {prm_vs_orm['ORM'][n]:.3f}   PRM {prm_vs_orm['PRM'][n]:.3f}")
headline["prm_vs_orm"] = prm_vs_orm

# %% [markdown]
# The PRM chooses better once there is a choice: the ORM must judge a whole answer from its
# last token and leans on what usually goes with being right, so among many answers it finds
# wrong ones it scores high, and its choice gets worse past a few answers. The PRM checks each
# column, where an error is visible; its choice also degrades at large $n$ (a verifier that
# misses a fifth of the wrong steps is exploited by enough samples), but far less. That is
# Lightman et al.'s result, with exact step labels standing in for their annotators.

# %%
chapter.finish(headline, {"budget_generations": budget,
                          "generations": {name: run["points"][-1]["generations"] for name, run in runs.items()}})
