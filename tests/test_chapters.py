"""Run every chapter headless on the default profile; hold its headline metrics in bands.

Each band states what the chapter claims (its text and its issue), not the value one run
happened to print. Budgets, on the tiny profile: each chapter's wall time in `CHECKS` (60 s
for chapter 01, 120 s for the others, imports included) and a peak RSS of `PEAK_RSS_MB`
(1.5 GiB).

The wall budgets are those of a machine as fast as the one they were set on: machines of the
same kind differ (chapter 03's unchanged code ran at most 113 s on the machine of 2026-12-01
and 173 s on that of 2026-12-02), so the budget grows with `machine_slowdown`, the time of a
fixed workload of the zoo model against its time on the budgets' machine. One machine's speed
also drifts within a run (chapter 03 took 145-156 s in CI runs where a slowdown measured once,
at the start, allowed 137-139 s), so the workload is timed just before and just after each
chapter, and the budget uses the mean of the two. That mean still misses a slowdown in between
(the two measurements of one run here differed by up to 1.5x), so a chapter near its budget
fails now and then: keep each well under it. Chapter 03, which CI failed at 141 s against
129 s, measured 85-100 s budget-equivalent after the cuts of 2026-12-03.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))


def check_01_rl_basics(m):
    # the measured variance ratio agrees with its closed form, and a baseline removes most of
    # the variance when rewards sit far from zero (offset 5 against arm spread 1 and noise 1)
    assert m["variance_ratio"] == pytest.approx(m["variance_ratio_exact"], rel=0.1)
    assert m["variance_ratio_exact"] > 5
    # clipping stops the ratio just past 1 + eps = 1.2; the plain surrogate runs away
    assert 1.15 < m["ppo_clip_ratio"] < 1.35 and m["unclipped_ratio"] > 2
    # the acceptance: KL(pi || pi*) falls at least tenfold for both methods
    for method in ("reinforce", "ppo"):
        assert m[f"{method}_kl_end"] < m[f"{method}_kl_start"] / 10


def check_03_reward_models(m):
    # held-out accuracy against gold rises from the smallest N to the largest, for clean and
    # noisy labels, beyond the evaluation's noise (paired bootstrap over the held-out pairs;
    # neighbouring sizes are separate training runs and may swap)
    assert m["accuracy_growth"]["clean"]["low"] > 0 and m["accuracy_growth"]["noisy"]["low"] > 0
    clean, noisy = list(m["accuracy_vs_n"].values())[-1], list(m["accuracy_vs_n_noisy"].values())[-1]
    # label noise lowers the curve on average over N (at the largest N the two may meet)
    assert 0.8 < clean and m["noise_cost"]["low"] > 0
    # trained on careless labels, the RM beats the annotators it learned from: the flips average
    # out (on clean labels it comes within a few points of one annotator, either way: no band)
    assert noisy > m["annotator_agreement_noisy"] + 0.05
    # categories: easy nearly solved, near-ties near chance, out-of-distribution worse
    cat = m["category_accuracy"]
    assert cat["easy"] > 0.95 and 0.4 < cat["hard"] < 0.7 and cat["ood"] < cat["held_out"] - 0.03
    # calibrated on clean labels; noisy labels cost calibration
    assert m["ece"] < 0.15 and m["ece_noisy"] > m["ece"]
    # the annotators' length bias costs accuracy on length-adversarial pairs, and length-balanced
    # curation wins much of it back (paired intervals over those pairs); OffsetBias's effect is
    # not reliable at this scale, and the chapter makes no claim for it
    la = m["length_adversarial_against_biased"]
    assert la["unbiased annotators"]["low"] > 0 and la["biased, length-balanced"]["low"] > 0


def check_04_policy_optimization(m):
    sft = m["sft_gold"]
    assert 0.15 < sft < 0.35
    for name, point in m["frontier"].items():  # every method gains gold by optimising the proxy only
        assert point["gold"] > sft + 0.1, name
        assert point["proxy"] > m["sft_proxy"], name
    assert m["ppo_best"]["gold"] > sft + 0.3
    ablation = m["ablation"]
    assert ablation["no KL penalty"]["kl"] > 2 * ablation["PPO (all details)"]["kl"]
    over = m["overoptimization"]
    assert over["final"]["gold"] < over["peak"]["gold"]  # gold peaks, then falls
    # while the proxy does not fall with it: whatever it loses after the peak, gold loses more
    assert over["peak"]["gold"] - over["final"]["gold"] > over["peak"]["proxy"] - over["final"]["proxy"]
    assert over["final"]["kl"] > over["peak"]["kl"]
    # Gao et al.'s RL form bends down (beta > 0) and explains most of the path's variance; how
    # well varies with the seed, as the no-KL path jumps in KL
    assert over["rl_fit"]["r2"] > 0.5 and over["rl_fit"]["beta"] > 0
    assert over["bon_fit"]["r2"] > 0.9


def check_05_rlaif(m):
    j = m["judge"]
    # the AI judge is weaker than a human annotator, debiasing helps, and its biases show
    assert 0.7 < j["judge, shown order"] < j["judge, debiased"] - 0.01
    assert m["judge_minus_human"]["high"] < 0  # weaker than a human, beyond the evaluation's noise
    assert j["position consistency"] < 0.9 and j["first chosen (shown order)"] > 0.55
    assert j["longer chosen when shorter is better, judge"] > j["longer chosen when shorter is better, human"] + 0.1
    assert j["unparsed"] == 0
    # verifiers well above chance: the judge's P(yes), the judge fine-tuned as GenRM (up or down
    # by a few points from the judge: no claim for the direction) and the fitted rubric
    v = m["verifiers"]
    assert v["judge pointwise (P(yes))"] > 0.75 and v["GenRM fine-tuned on human pairs"] > 0.75 and v["rubric fitted on human pairs"] > 0.7
    # every policy gains gold over SFT (paired over the prompts)
    gains = m["gold_gain_over_sft"]
    assert all(g["low"] > 0 for g in gains.values()), gains
    # equal budget: AI labels make less accurate RMs than human labels; ten times the AI labels
    # make RMs at least as accurate as the equal budget (paired over the held-out pairs, each
    # pair's correctness averaged over the chapter's RM fits) ...
    human_gap, more_gap = m["reward_accuracy_gaps"].values()
    assert human_gap["low"] > 0 and more_gap["high"] > 0
    # (the gold of the policies trained on 10x AI labels and on human labels is compared with an
    # interval, but one RLOO run per reward varies too much for a claim: no band)
    sr = m["self_rewarding"]  # self-rewarding gains gold at a small KL; its judge does not collapse
    assert m["self_rewarding_gain"]["low"] > 0 and sr[-1]["kl"] < 3
    assert all(abs(x["self_judge_accuracy"] - sr[0]["self_judge_accuracy"]) < 0.15 for x in sr)
    cr = m["critique_revision"]
    assert cr["gold_after"] > cr["gold_before"] + 0.3


def check_07_dpo_variants(m):
    # enumerable task: DPO (Bradley-Terry labels, abundant balanced pairs) and DRO reach pi*;
    # losses with another optimum (IPO, SLiC-HF, KTO, ORPO, SimPO) stay further away
    kl = m["pi_star_kl"]
    assert kl["DPO"] < 0.3 and kl["DPO"] < kl["π_ref"] / 5 and abs(kl["DRO"]) < 1e-3
    assert all(kl[name] > kl["DPO"] for name in ("IPO", "SLiC-HF", "KTO", "ORPO", "SimPO"))
    # text world: most of the 15 trained policies beat SFT on gold win rate (at one learning rate
    # and number of epochs for all, some over-fit the noisy comparisons on some seeds: sDPO on
    # seed 40 ran to KL 22 and a win rate of 0.46, RSO on seed 45 to KL 114 and 0.19); the
    # smallest beta moves DPO further from the reference than the largest; DPO's best point
    # gains clearly over SFT
    frontier = m["frontier"]
    assert len(frontier) == 15 and sum(p["win_rate"] > 0.5 for p in frontier.values()) > len(frontier) / 2, frontier
    kl = m["dpo_kl_interval"]  # the smallest beta moves further than the largest, beyond evaluation noise
    assert kl["DPO β=0.1"]["low"] > kl["DPO β=1"]["high"]
    assert max(frontier[n]["gold"] for n in frontier if n.startswith("DPO")) > m["sft_gold"] + 0.2


def check_08_dpo_analysis(m):
    # (a) noiseless preferences: DPO concentrates on the best sequence more than IPO, and is
    # still moving at the end (its optimum is at infinity) while IPO has converged (exact KL)
    assert m["a_best_probability"]["dpo"] > m["a_best_probability"]["ipo"]
    growth = m["a_kl_growth"]
    assert growth["dpo"] > 0 and growth["dpo"] > 10 * abs(growth["ipo"])
    # (b) DPO lowers the chosen responses' likelihood, DPOP keeps it (intervals over the pairs)
    change = m["b_chosen_change_interval"]
    assert change["DPO"]["high"] < 0 and change["DPOP"]["low"] > -0.1
    # (c) offline DPO on another policy's data keeps more mass on never-labelled sequences than online
    mass = m["c_unlabelled_mass"]
    assert mass["offline, other policy's data"] > mass["online (on-policy rounds)"]
    # (d) rock-paper-scissors: Bradley-Terry DPO is exploitable, self-play's average is near Nash
    # (exact on the enumerable task: DPO moves away from the Nash mix, beyond pi_ref, and far
    # beyond every self-play average)
    ex = m["d_exploitability"]
    self_play = [ex[f"{k} (average iterate)"] for k in ("SPPO", "DNO", "SPO")]
    assert ex["DPO (Bradley–Terry)"] > ex["π_ref"] and ex["DPO (Bradley–Terry)"] > 2 * max(self_play)
    assert max(self_play) < 0.1
    # (e) negatives alone cut the violation rate
    v = m["e_violation_rate"]
    assert v["NPO"] < v["SFT"] - 0.1 and v["D2O"] < v["SFT"] - 0.1
    # (f) online DPO lands near pi*, offline DPO over-fits its finite labels
    f = m["f_kl_to_optimum"]  # exact KLs: online ends several times closer to pi* than either offline run
    assert all(f["online (on-policy rounds)"] < f[k] / 2 for k in ("offline, other policy's data", "offline, π_ref's data"))


def check_09_reasoning_rl(m):
    # the family raises held-out accuracy over the SFT model (paired over problems): at least six
    # of the seven methods beyond the evaluation's noise (CISPO gained nothing on seed 5, +1.2%
    # [-7.0%, +9.4%], while the six others gained 23-29%), and the median method by 15% or more
    gains = m["accuracy_gain"]
    assert len(gains) == 7 and sum(g["low"] > 0 for g in gains.values()) >= 6, gains
    assert np.median([g["estimate"] for g in gains.values()]) > 0.15, gains
    # pass@k: RL raises pass@1 clearly; at the largest k the SFT model has caught up (both near 1)
    (sft, rl) = m["pass_at_k"].values()
    largest = max(sft, key=int)
    assert rl["1"] > sft["1"] + 0.1 and sft[largest] > 0.95 and abs(rl[largest] - sft[largest]) < 0.05
    # the policy's entropy on its own answers falls under every method, and by 30% or more
    # under the median one (one batch's entropy at each end: GSPO's fell by only 20% on seed 7)
    ratios = [e["end"] / e["start"] for e in m["entropy"].values()]
    assert max(ratios) < 1 and np.median(ratios) < 0.7, m["entropy"]
    # R1-Zero from a base that rarely writes work: below SFT-then-RL, and the format not learnt in this budget
    r1 = m["r1_zero"]
    assert r1["sft_then_rl_minus_r1_zero"]["low"] > 0 and r1["r1_zero"]["worked"] < 0.25
    # Kimi's length reward shortens the answers (an interval over the answers)
    assert m["length_penalty"]["length_change"]["high"] < 0
    # a process reward model picks the best of 16 answers better than an outcome reward model
    # trained on the same answers (paired over problems; at n = 8 the interval of seed 2
    # reached below 0: the ORM's choice degrades at larger n)
    assert m["prm_vs_orm"]["PRM_minus_ORM_at_16"]["low"] > 0


CHECKS = {  # slug -> (bands, wall-time budget in s)
    "01_rl_basics": (check_01_rl_basics, 60),
    "03_reward_models": (check_03_reward_models, 120),
    "04_policy_optimization": (check_04_policy_optimization, 120),
    "05_rlaif": (check_05_rlaif, 120),
    "07_dpo_variants": (check_07_dpo_variants, 120),
    "08_dpo_analysis": (check_08_dpo_analysis, 120),
    "09_reasoning_rl": (check_09_reasoning_rl, 120),
}
PEAK_RSS_MB = 1536
BUDGET_MACHINE_SECONDS = 1.25
"""`reference_workload` on the machine the wall budgets were set on, estimated since that
machine is gone: it took 2.12 s on the machine of 2026-12-02 (the fastest of four), which
ran the same code 1.5x (chapter 03: 173 s against at most 113 s) to about 2x (the suite
without SmolLM2: about 700 s against 340 s) slower than that one; 2.12 / 1.7, between the two."""


def reference_workload() -> float:
    """Seconds for what the chapters do most on the zoo model: sampling and training steps."""
    from survey_lib.generation import sample_completions
    from survey_lib.models import load_model

    model, tokenizer = load_model("tiny-text-lm")
    batch = tokenizer(["the movie was great and the plot was fun ."] * 64, return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    started = time.perf_counter()
    sample_completions(model, tokenizer, ["the movie"] * 768, seed=0)
    for _ in range(90):
        loss = model(**batch, labels=batch["input_ids"]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def machine_slowdown() -> float:
    """How much slower this machine is than the budgets' one, now (at least 1)."""
    return max(1.0, min(reference_workload() for _ in range(2)) / BUDGET_MACHINE_SECONDS)


def test_every_chapter_has_bands():
    assert sorted(CHECKS) == [p.stem for p in SOURCES]


def run_chapter(slug: str, results: Path, *overrides: str) -> tuple[dict, float]:
    """Run chapters/<slug>.py headless with `key=value` overrides, offline, writing into
    `results`; (its JSON record, the wall time of the whole run, imports included)."""
    env = {**os.environ, "SURVEY_RESULTS_DIR": str(results), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    started = time.time()
    proc = subprocess.run([sys.executable, str(ROOT / "chapters" / f"{slug}.py"), *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    wall = time.time() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((results / f"{slug}.json").read_text()), wall


@pytest.mark.chapter
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_chapter_runs_headless_within_bands_and_budget(source, tmp_path):
    before = machine_slowdown()
    record, wall = run_chapter(source.stem, tmp_path)
    after = machine_slowdown()
    slowdown = (before + after) / 2
    check, budget = CHECKS[source.stem]
    check(record["headline"])
    assert wall <= budget * slowdown, (
        f"{source.stem} took {wall:.0f} s (budget {budget} s on the budgets' machine, {budget * slowdown:.0f} s on "
        f"this one, {slowdown:.2f}x slower: {before:.2f}x before the chapter, {after:.2f}x after)")
    assert record["peak_rss_mb"] <= PEAK_RSS_MB, f"{source.stem} peaked at {record['peak_rss_mb']} MB"
    assert list((tmp_path / "figures").glob(f"{source.stem}-*.png")), "the chapter saved no figure"
