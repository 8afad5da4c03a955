# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · RLHF I: reward models from human feedback
#
# *Companion to §4.1 and §6.4 of "Reinforcement Learning Enhanced LLMs: A Survey" (Wang et al.,
# [arXiv 2412.10400](https://arxiv.org/abs/2412.10400)).*
#
# **Why a reward model at all?** Sun ([arXiv 2310.06147](https://arxiv.org/abs/2310.06147))
# reads RLHF as online inverse RL: the policy must be scored on *its own* fresh samples, again
# and again, but a human label is slow and expensive. So we buy a finite set of comparisons
# once and fit a **reward model** (RM) to them: a cheap proxy for the human that can score any
# number of new responses. Everything downstream (PPO in chapter 04, best-of-n, RLAIF in 05)
# optimises this proxy, so how well it generalises, where it fails and which biases it
# inherits decide what the policy learns.
#
# This chapter:
#
# 1. samples response pairs from the tiny policy and has **simulated annotators** label them
#    (Bradley–Terry, with noise, disagreement and a length bias as parameters);
# 2. trains Bradley–Terry RMs on $N = 100 \ldots 3000$ comparisons at two noise levels and
#    measures **held-out accuracy against the gold reward**;
# 3. evaluates the largest one on a **RewardBench-style suite**: easy, hard (near-ties),
#    length-adversarial and out-of-distribution pairs, with **calibration** (ECE);
# 4. shows annotators' **length bias leaking** into the RM, and two published mitigations,
#    measured before and after: **OffsetBias** counter-examples and **length-balanced curation**;
# 5. adds Llama 2's **margin** loss and an **ensemble** (mean and spread) that later chapters use.

# %%
# On Colab, install the companion's package first (harmless elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "survey-lib @ git+https://github.com/rl-enhanced-llms/companion"], check=True)

# %% tags=["parameters"]
profile = "tiny"  # "tiny" (CPU, the zoo) | "small" (CPU, SmolLM2) | "colab" | "gpu"; sizes per profile: survey_lib/sizes.py
seed = 0
# comparisons and annotators
comparison_counts = "100,300,1000,3000"  # training-set sizes N (comma-separated)
label_noise = "0.0,0.2"  # annotators' flip rates to compare (comma-separated)
annotator_temperature = 0.2  # Bradley-Terry scale of the annotators' judgements
disagreement = 0.3  # spread of each annotator's weights around the gold weights
length_bias = 0.1  # utility per word that biased annotators add
# reward-model training
epochs = 2
min_steps = 50  # small N: repeat the data up to this many steps (more over-fits the smallest sets)
learning_rate = 1e-3
batch_size = 32
training_seeds = 3  # reward models trained per (N, noise) point, from different seeds; a point is their mean
# the evaluation suite
eval_pairs = 3000  # held-out pairs sampled before splitting into categories
eval_per_category = 1000
ood_temperature = 2.0  # the out-of-distribution policy: the same model sampled hotter
# mitigations
offset_fraction = 0.5  # OffsetBias pairs added, as a fraction of N
balanced_max_gap = 2  # length-balanced curation keeps pairs whose lengths differ by at most this many words

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from survey_lib.book import Chapter
from survey_lib.preference_data import offset_bias_rows, sample_response_pairs
from survey_lib.reward_bench import CATEGORIES, build_eval_suite, evaluate_reward, pair_confidence, reliability_bins, suite_points, summarize_points
from survey_lib.reward_models import RewardConfig, RewardEnsemble, train_reward_model
from survey_lib.stats import difference_interval
from survey_lib.world.annotators import AnnotatorConfig, SimulatedAnnotators, gold_agreement

chapter = Chapter("03_reward_models", globals())
sizes = [int(n) for n in comparison_counts.split(",")]
noise_levels = [float(f) for f in label_noise.split(",")]

# %% [markdown]
# ## 1. Comparisons from simulated humans
#
# InstructGPT's labellers saw a prompt $x$ and several responses from the SFT policy and
# ranked them. We sample two responses per prompt from the tiny policy and ask a pool of
# simulated annotators. Annotator $j$ scores a response with their own perturbation of the
# gold reward, $u_j(y) = \mathrm{gold}(y; w_j) + \text{length\_bias}\cdot|y|$, and prefers $a$
# over $b$ with the Bradley–Terry probability
#
# $$P_j(a \succ b) = \sigma\!\left(\frac{u_j(a) - u_j(b)}{T}\right),$$
#
# after which a careless click flips the label with probability `flip_rate`. Held-out pairs for
# evaluation come from the same policy, and a second set from the policy sampled at
# temperature `ood_temperature`, which writes less fluent, more varied text than anything the
# annotators labelled.

# %%
world = chapter.profile.world(seed)
policy, tokenizer = chapter.profile.load("text")
train_pairs = sample_response_pairs(policy, tokenizer, world, max(sizes), seed=seed, progress=True)
held_out = sample_response_pairs(policy, tokenizer, world, eval_pairs, seed=seed + 1)
ood = sample_response_pairs(policy, tokenizer, world, eval_pairs // 3, temperature=ood_temperature, seed=seed + 2)
suite = build_eval_suite(world, held_out, ood, per_category=eval_per_category, seed=seed)
del policy
print("a training pair:", train_pairs.prompts[0], "|", train_pairs.first[0], "|", train_pairs.second[0])
print("evaluation categories:", suite.sizes())


def annotators(flip_rate=0.0, bias=0.0):
    config = AnnotatorConfig(temperature=annotator_temperature, flip_rate=flip_rate, disagreement=disagreement, length_bias=bias, seed=seed)
    return SimulatedAnnotators(world, config)


def fit(rows, member=0):
    """A fresh reward model (the policy's trunk, a new scalar head) trained on `rows`."""
    torch.manual_seed(seed + member)
    model, tok = chapter.profile.load("text", head="reward")
    config = RewardConfig(epochs=epochs, min_steps=min_steps, learning_rate=learning_rate, batch_size=batch_size, seed=seed + member)
    return train_reward_model(model, config, rows, tokenizer=tok)


# %% [markdown]
# ## 2. The Bradley–Terry reward model
#
# The RM $r_\phi(x, y)$ is the policy's transformer with its LM head replaced by a scalar head
# on the last token (InstructGPT, [arXiv 2203.02155](https://arxiv.org/abs/2203.02155)). Under
# the Bradley–Terry model $P(y_c \succ y_r \mid x) = \sigma(r_\phi(x, y_c) - r_\phi(x, y_r))$,
# and its maximum-likelihood fit minimises
#
# $$\mathcal{L}(\phi) = -\,\mathbb{E}_{(x, y_c, y_r)}\Big[\log \sigma\big(r_\phi(x, y_c) - r_\phi(x, y_r)\big)\Big].$$
#
# Only differences of rewards are identified: $r_\phi + c(x)$ fits equally well. The loss is
# `bradley_terry_loss` in `survey_lib/reward_models.py`, the same as TRL's `RewardTrainer`
# (a test checks both). We train one RM per $(N, \text{noise})$ on nested subsets of the same
# comparisons and score it on held-out pairs labelled by the **gold** reward. One training run
# is a noisy measurement (the head's initial weights and the data order change its accuracy
# by a few points, now and then by ten), so each point of the curve is the mean of
# `training_seeds` runs from different seeds.

# %%
labelled = {flip: train_pairs.label(annotators(flip)) for flip in noise_levels}
annotator_agreement = {  # how often one annotator's label picks the gold winner, on the held-out pairs
    flip: gold_agreement(world, held_out.prompts, held_out.first, held_out.second, annotators(flip).label(held_out.prompts, held_out.first, held_out.second))
    for flip in noise_levels
}
runs, run_accuracy = {}, {}
correct, accuracy = {flip: {} for flip in noise_levels}, {flip: {} for flip in noise_levels}
for flip, n, k in tqdm([(f, n, k) for f in noise_levels for n in sizes for k in range(training_seeds)], desc="reward models"):
    runs.setdefault((flip, n), []).append(fit(labelled[flip][:n], member=k))
for (flip, n), rms in runs.items():
    per_run = [pair_confidence(rm, suite.rows["held_out"])[1] for rm in rms]  # per pair: 1, 0 (or 0.5 on a tie)
    run_accuracy[flip, n] = [float(c.mean()) for c in per_run]
    correct[flip][n] = np.mean(per_run, axis=0)
    accuracy[flip][n] = float(correct[flip][n].mean())
models = {key: rms[0] for key, rms in runs.items()}  # sections 3-5 examine the first run of each point
# how sure: every RM is scored on the same held-out pairs, so differences resample the pairs together
clean, noisy = noise_levels[0], noise_levels[-1]
growth = {flip: difference_interval(correct[flip][max(sizes)], correct[flip][min(sizes)], paired=True, seed=seed)
          for flip in (clean, noisy)}
per_pair = {flip: np.mean([correct[flip][n] for n in sizes], axis=0) for flip in (clean, noisy)}  # averaged over N
noise_cost = difference_interval(per_pair[clean], per_pair[noisy], paired=True, seed=seed)

fig, ax = plt.subplots(figsize=(6, 3.8))
for i, flip in enumerate(noise_levels):
    ax.plot(sizes, [accuracy[flip][n] for n in sizes], "o-", color=f"C{i}", label=f"RM, flip rate {flip} (mean of {training_seeds} runs)")
    ax.plot(np.repeat(sizes, training_seeds), [a for n in sizes for a in run_accuracy[flip, n]], ".", color=f"C{i}", alpha=0.4)
    ax.axhline(annotator_agreement[flip], color=f"C{i}", ls=":", label=f"one annotator's agreement, flip {flip}")
ax.set(xscale="log", xlabel="comparisons N", ylabel="held-out accuracy vs gold", title="Reward-model accuracy grows with data")
ax.legend(fontsize=8)
chapter.show(fig, "accuracy_vs_n")
for flip in noise_levels:
    print(f"flip {flip}: " + ", ".join(f"N={n}: {accuracy[flip][n]:.3f}" for n in sizes) + f"  (an annotator agrees with gold {annotator_agreement[flip]:.3f})")
    print("  single runs range over " + ", ".join(f"N={n}: {min(run_accuracy[flip, n]):.3f}-{max(run_accuracy[flip, n]):.3f}" for n in sizes))
for flip, ci in growth.items():
    print(f"flip {flip}: accuracy gain from N={min(sizes)} to N={max(sizes)}: {ci['estimate']:+.3f}, 95% interval [{ci['low']:+.3f}, {ci['high']:+.3f}]")
print("clean minus noisy accuracy, averaged over N: {estimate:+.3f}, 95% interval [{low:+.3f}, {high:+.3f}]".format(**noise_cost))

# %% [markdown]
# With a few thousand comparisons the RM agrees with the gold reward about as often as a
# single annotator does (within a few points, either way, from seed to seed), and with careless labels (flip rate 0.2) **far more often than the
# annotators it learned from**: each label is noisy, but the flips average out over thousands
# of them. This is the proxy argument in numbers: a few thousand human labels buy a scorer for
# unlimited new samples.
#
# How sure are we? Two kinds of noise move these points. *Training* noise: the faint dots are
# the single runs behind each mean, and they scatter by several points (the printed ranges);
# one unlucky run at N = 3000 can score below a lucky one at N = 1000, which is why a point is
# a mean of runs. *Evaluation* noise: every RM is scored on the same held-out pairs, so the
# printed 95% intervals resample those pairs together (they cover the evaluation, not the
# training runs). From the smallest to the largest N the gain is well outside both, for both
# label sets. Between neighbouring sizes it need not be.
# Label noise lowers the curve **on average over the sizes** (the interval of the clean-minus-noisy
# gap excludes zero), but at the largest N the two curves can meet: symmetric flips blur a
# Bradley–Terry fit without biasing which response it ranks higher, so with enough comparisons
# the noisy RM catches up on accuracy. What noise keeps costing is calibration (section 3).
#
# ## 3. A RewardBench-style evaluation
#
# One accuracy hides where an RM fails. RewardBench ([arXiv 2403.13787](https://arxiv.org/abs/2403.13787))
# scores pairs by category; ours are built from gold-labelled held-out pairs:
#
# | category | pairs |
# |---|---|
# | held_out | the training policy's pairs, as they come |
# | easy | gold rewards at least 0.5 apart |
# | hard | near-ties: gold rewards within 0.1 |
# | length_adversarial | the longer response (≥ 3 words longer) is the worse one |
# | ood | pairs from the policy sampled at `ood_temperature` |
#
# **Calibration**: the RM also states a probability, $\sigma(r_a - r_b)$. In a reliability
# diagram we bin pairs by the confidence in the predicted winner and plot how often that winner
# is the gold one; the expected calibration error (ECE) is the count-weighted gap.

# %%
largest = max(sizes)
points = {flip: suite_points(models[flip, largest], suite) for flip in noise_levels}  # per pair, per category
report = {flip: summarize_points(points[flip]) for flip in noise_levels}
print(f"{'category':20s}" + "".join(f"  acc (flip {f})  ECE (flip {f})" for f in noise_levels))
for name in CATEGORIES:
    print(f"{name:20s}" + "".join(f"  {report[f][name]['accuracy']:13.3f}  {report[f][name]['ece']:13.3f}" for f in noise_levels))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
width = 0.8 / len(noise_levels)
for i, flip in enumerate(noise_levels):
    ax1.bar(np.arange(len(CATEGORIES)) + i * width, [report[flip][c]["accuracy"] for c in CATEGORIES], width, label=f"flip {flip}")
    confidence, correct = points[flip]["held_out"]
    mean_confidence, hit_rate, _ = reliability_bins(confidence, correct)
    ax2.plot(mean_confidence, hit_rate, "o-", label=f"flip {flip}: ECE {report[flip]['held_out']['ece']:.3f}")
ax1.set_xticks(np.arange(len(CATEGORIES)) + width * (len(noise_levels) - 1) / 2, CATEGORIES, rotation=25, ha="right")
ax1.set(ylabel="accuracy vs gold", ylim=(0, 1), title=f"RM on {largest} comparisons, by category")
ax1.axhline(0.5, color="grey", lw=0.8)
ax1.legend(fontsize=8)
ax2.plot([0.5, 1], [0.5, 1], color="grey", lw=0.8)
ax2.set(xlabel="confidence in the predicted winner", ylabel="how often it is the gold winner", title="Reliability (held-out pairs)")
ax2.legend(fontsize=8)
chapter.show(fig, "eval_suite")

# %% [markdown]
# Easy pairs are nearly solved and near-ties are close to a coin flip, as they should be:
# the annotators themselves can barely tell them apart. Out-of-distribution pairs are where
# the proxy is weakest, which is exactly where an optimised policy goes (chapter 04's
# over-optimisation). The reliability curves lie above the diagonal: the RM learns the
# annotators' uncertainty, so it is *under*-confident about which response the gold reward
# prefers, and careless labels (flip rate 0.2) make it much more so.
#
# ## 4. Length bias leaks into the reward model
#
# Human raters often prefer longer answers, and RMs learn it (Singhal et al.,
# [arXiv 2310.03716](https://arxiv.org/abs/2310.03716)). We give the annotators a bias of
# `length_bias` utility per word and retrain at the largest $N$. The length-adversarial
# category, where the longer answer is worse, shows the damage. Two published mitigations, each
# measured:
#
# - **OffsetBias** (Park et al., [arXiv 2407.06551](https://arxiv.org/abs/2407.06551)): add
#   pairs whose rejected response carries the feature the judge wrongly likes (length) *and* a
#   critical error; the label comes from the construction, not from an annotator. Ours extends a
#   policy response with a negative clause or a repetition of itself (`offset_bias_rows`).
# - **Length-balanced curation** (Singhal et al.'s RM-side data intervention, the data-curation
#   route that Skywork-Reward, [arXiv 2410.18451](https://arxiv.org/abs/2410.18451), takes at
#   scale): keep only comparisons whose responses differ by at most `balanced_max_gap` words,
#   so the labels carry no length signal to learn, at the price of most of the data.

# %%
biased_rows = train_pairs.select(range(largest)).label(annotators(bias=length_bias))
rng = np.random.default_rng(seed)
n_offset = int(offset_fraction * largest)
offset_rows = offset_bias_rows(train_pairs.prompts[:n_offset], train_pairs.first[:n_offset], rng)
offset_gold = world.gold_reward([r["prompt"] for r in offset_rows], [r["chosen"] for r in offset_rows]) > world.gold_reward(
    [r["prompt"] for r in offset_rows], [r["rejected"] for r in offset_rows]
)
balanced_rows = [r for r in biased_rows if abs(len(r["chosen"].split()) - len(r["rejected"].split())) <= balanced_max_gap]
print(f"OffsetBias pairs: {len(offset_rows)}, their constructed label agrees with gold for {offset_gold.mean():.1%}")
print(f"length-balanced curation keeps {len(balanced_rows)} of {len(biased_rows)} comparisons")

variants = {
    "unbiased annotators": models[noise_levels[0], largest],
    "length-biased annotators": fit(biased_rows),
    "biased + OffsetBias": fit(biased_rows + offset_rows),
    "biased, length-balanced": fit(balanced_rows),
}
variant_points = {name: points[noise_levels[0]] if name == "unbiased annotators" else suite_points(rm, suite)
                  for name, rm in tqdm(variants.items(), desc="evaluating")}
length_report = {name: summarize_points(p) for name, p in variant_points.items()}
for name, r in length_report.items():
    print(f"{name:26s} length-adversarial {r['length_adversarial']['accuracy']:.3f}   held-out {r['held_out']['accuracy']:.3f}")
# how sure: each variant against the biased RM, on the same length-adversarial pairs
adversarial = {name: p["length_adversarial"][1] for name, p in variant_points.items()}
against_biased = {name: difference_interval(adversarial[name], adversarial["length-biased annotators"], paired=True, seed=seed)
                  for name in variants if name != "length-biased annotators"}
for name, ci in against_biased.items():
    print(f"{name:26s} minus biased, length-adversarial: {ci['estimate']:+.3f}, 95% interval [{ci['low']:+.3f}, {ci['high']:+.3f}]")

fig, ax = plt.subplots(figsize=(7, 3.4))
x = np.arange(len(variants))
ax.bar(x - 0.2, [r["length_adversarial"]["accuracy"] for r in length_report.values()], 0.4, label="length-adversarial")
ax.bar(x + 0.2, [r["held_out"]["accuracy"] for r in length_report.values()], 0.4, label="held-out")
ax.set_xticks(x, list(variants), rotation=12)
ax.axhline(0.5, color="grey", lw=0.8)
ax.set(ylabel="accuracy vs gold", ylim=(0, 1), title="Annotators' length bias, learned and mitigated")
ax.legend(fontsize=8)
chapter.show(fig, "length_bias")

# %% [markdown]
# The biased annotators' RM prefers the longer response so strongly that it gets about half
# or more of the length-adversarial pairs *wrong*, far below the unbiased RM (the printed
# intervals resample those pairs). OffsetBias pairs do not reliably push back in this world:
# on some seeds they recover part of the loss, on others none, and the interval says which this
# run was. The RM mostly learns to spot the two constructed errors rather than to stop
# rewarding length. Removing the length signal from the data repairs far more, and raises
# held-out accuracy above the biased RM's with only a fraction of the comparisons (the count
# is printed above): biased labels are worse than fewer labels. (On real data, length often
# does carry information; balancing throws that away too.)
#
# ## 5. Margins and ensembles
#
# **Llama 2's margin** ([arXiv 2307.09288](https://arxiv.org/abs/2307.09288)): annotators also
# rate *how much* better the winner is (four levels, from "negligibly" to "significantly"),
# and the loss asks for a gap of at least $m(\text{rating})$:
# $-\log\sigma(r_c - r_r - m)$. A row with a `"margin"` field uses it, as in TRL.
#
# **Ensembles** (Coste et al., [arXiv 2310.02743](https://arxiv.org/abs/2310.02743)): $K$ RMs
# trained from different seeds; their mean is the reward and their spread a cheap uncertainty
# estimate, which chapters 04 and 06 use against over-optimisation. We already have such RMs:
# the `training_seeds` runs behind each point of section 2's curve.

# %%
margin_rows = train_pairs.select(range(largest)).label(annotators(noise_levels[0]), margin=True)
margin_report = evaluate_reward(fit(margin_rows), suite)
plain_report = report[noise_levels[0]]
for name in ("held_out", "easy", "hard"):
    print(f"{name:9s} plain {plain_report[name]['accuracy']:.3f}   with Llama 2 margin {margin_report[name]['accuracy']:.3f}")

mid = sorted(sizes)[len(sizes) // 2]
members = runs[noise_levels[0], mid]
ensemble = RewardEnsemble(members)
ensemble_report = evaluate_reward(ensemble, suite)
spread = {}
for name in ("held_out", "ood"):
    rows = suite.rows[name]
    spread[name] = float(ensemble.mean_and_std([r["prompt"] for r in rows], [r["chosen"] for r in rows])[1].mean())
member_accuracy = run_accuracy[noise_levels[0], mid]
print(f"ensemble of {len(members)} RMs on N={mid}: held-out accuracy {ensemble_report['held_out']['accuracy']:.3f} (members {np.round(member_accuracy, 3).tolist()})")
print(f"mean spread of the members' rewards: held-out {spread['held_out']:.3f}, OOD {spread['ood']:.3f}")

# %% [markdown]
# ## What we measured
#
# - Held-out accuracy against the gold reward rises with the number of comparisons and falls
#   with label noise; at a few thousand comparisons the RM matches a single annotator on clean
#   labels and beats the careless ones by a wide margin.
# - Llama 2's margin makes no measurable difference here (compare the accuracies with and
#   without it, printed in section 5).
# - By category: easy pairs nearly solved, near-ties near chance, out-of-distribution pairs
#   clearly worse; noisy labels make the RM under-confident (higher ECE).
# - A length bias in the annotators costs the RM most of its accuracy on length-adversarial
#   pairs; length-balanced curation recovers most of it; OffsetBias counter-examples help on
#   some seeds and not on others (no claim at this scale).
# - An ensemble's mean is a little more accurate than its members. Its spread, though, hardly
#   tells in- from out-of-distribution pairs (compare the two mean spreads printed in
#   section 5): members that share a pre-trained trunk and their data make the same
#   mistakes, as Eisenstein et al. ([arXiv 2312.09244](https://arxiv.org/abs/2312.09244)) found
#   for reward-model ensembles at scale. Chapter 06 returns to uncertainty.
#
# On the `colab` and `gpu` profiles the same cells load a Hub model with a 4-bit base, LoRA
# adapters and a scalar head (`load_model(..., head="reward")`). To train on a Hub preference
# dataset instead of the simulated one, `survey_lib.preference_data.load_preference_dataset`
# reads and validates TRL's formats, e.g. `load_preference_dataset("trl-lib/ultrafeedback_binarized")`.

# %%
chapter.finish(
    {
        "accuracy_vs_n": {str(n): accuracy[noise_levels[0]][n] for n in sizes},
        "accuracy_vs_n_noisy": {str(n): accuracy[noise_levels[-1]][n] for n in sizes},
        "accuracy_growth": {"clean": growth[clean], "noisy": growth[noisy]},
        "noise_cost": noise_cost,
        "annotator_agreement": annotator_agreement[noise_levels[0]],
        "annotator_agreement_noisy": annotator_agreement[noise_levels[-1]],
        "category_accuracy": {c: report[noise_levels[0]][c]["accuracy"] for c in CATEGORIES},
        "ece": report[noise_levels[0]]["held_out"]["ece"],
        "ece_noisy": report[noise_levels[-1]]["held_out"]["ece"],
        "length_adversarial_accuracy": {name: r["length_adversarial"]["accuracy"] for name, r in length_report.items()},
        "length_adversarial_against_biased": against_biased,
    },
    details={
        "noise_levels": noise_levels,
        "category_accuracy_noisy": {c: report[noise_levels[-1]][c]["accuracy"] for c in CATEGORIES},
        "category_ece": {c: report[noise_levels[0]][c]["ece"] for c in CATEGORIES},
        "held_out_accuracy_length_variants": {name: r["held_out"]["accuracy"] for name, r in length_report.items()},
        "offset_construction_gold_agreement": float(offset_gold.mean()),
        "balanced_rows": len(balanced_rows),
        "margin_accuracy": {c: margin_report[c]["accuracy"] for c in ("held_out", "easy", "hard")},
        "ensemble_accuracy": ensemble_report["held_out"]["accuracy"],
        "ensemble_member_accuracy": member_accuracy,
        "ensemble_spread": spread,
        "suite_sizes": suite.sizes(),
        "run_accuracy": {f"flip {flip}, N={n}": acc for (flip, n), acc in run_accuracy.items()},
    },
)
