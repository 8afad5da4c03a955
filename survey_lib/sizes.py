"""Each chapter's sizes per profile: the one place they are set.

Used by `book.Chapter` (every chapter). A chapter's parameters cell holds its `tiny` sizes.
On another profile, `Chapter` replaces the parameters listed here for that chapter and
profile before the chapter runs, and says which; a value the run sets itself
(`key=value` on the command line) wins. A chapter runs only on the profiles listed for it:
on any other, `Chapter` stops with an error naming the profiles it does run on, rather than
running sizes made for the grammar world on a real model.

| chapter      | tiny          | small                                                          |
|--------------|---------------|----------------------------------------------------------------|
| 01_rl_basics | the cell's    | the cell's: its measured parts are exact (the enumerable task); section 1 shows SmolLM2 as a token-level policy |

The other chapters are sized for `tiny` only so far (issue 14 ports them one by one;
chapter 07's `text_losses` picks the few methods a small run can afford). Chapter 08 runs on
small with `n_pairs=32 n_negatives=96 violation_samples=96 learning_rate=5e-4 batch_size=8`
(measured on seed 0: 500 s; 633 s on 2026-12-03, a day this machine ran 1.2-1.5x slow), but is
not listed yet: it peaked at 9.3 GB, and at 6.4 GB once each method's copy of the SFT policy
shared the frozen base (`models.trainable_copy`); the budget is 4 GB. Its tiny band for
experiment b does not hold there (DPO raised the chosen log-likelihood, +4.2 nats), so it
needs bands of its own on small. Where the memory goes, probed on 2026-12-03: loading
SmolLM2 530 MB; sampling 32 pairs 2.0 GB peak; experiment b's DPO and DPOP (16 sequences a
step) 3.4-3.5 GB peak, 1.2 GB after glibc's `malloc_trim(0)` (freed heap its arenas keep).
The 6.4 GB peak is then experiment e's, where a D2O step holds 40 sequences (8 negatives and
4 reference samples each) with their vocabulary-wide logits. Passing `logits_to_keep` (no
logits over prompt positions) would halve those on chat prompts, but changes the zoo's
gradients in the last bits, hence the tiny numbers. `PreferenceConfig.gradient_accumulation_steps` now cuts
such a step into micro-batches with the same update: a run with `gradient_accumulation_steps=4`
(run alongside another job, stopped during experiment e) had peaked at 4.0 GB by then, so
what sets the peak there is still to be found. The `colab` and `gpu` profiles need the
Hub, so no size of theirs has been run yet; none is listed.
"""
from __future__ import annotations

SIZES: dict[str, dict[str, dict[str, object]]] = {
    "01_rl_basics": {"small": {}},
}
"""chapter slug -> profile -> {parameter: value}; `tiny` is always the parameters cell."""


def profiles_of(slug: str) -> list[str]:
    """The profiles chapter `slug` runs on: tiny, and those it is sized for."""
    return ["tiny", *SIZES.get(slug, {})]


def chapter_sizes(slug: str, profile: str) -> dict[str, object]:
    """The parameters `profile` sets for chapter `slug`; ValueError if it does not run there."""
    if profile not in profiles_of(slug):
        raise ValueError(
            f"chapter {slug} is not sized for the {profile!r} profile yet; it runs on: {', '.join(profiles_of(slug))} "
            "(survey_lib/sizes.py holds each chapter's sizes per profile)"
        )
    return dict(SIZES.get(slug, {}).get(profile, {}))


def chapters_on(profile: str, slugs: list[str]) -> list[str]:
    """The chapters among `slugs` that run on `profile` (`make book PROFILE=...`)."""
    return [s for s in slugs if profile in profiles_of(s)]


if __name__ == "__main__":  # python -m survey_lib.sizes PROFILE chapters/NN_slug.py ...: those that run there
    import sys
    from pathlib import Path

    paths = {Path(p).stem: p for p in sys.argv[2:]}
    kept = chapters_on(sys.argv[1], list(paths))
    for slug in paths:
        if slug not in kept:
            print(f"skipping {slug}: not sized for the {sys.argv[1]} profile yet (survey_lib/sizes.py)", file=sys.stderr)
    print(" ".join(paths[s] for s in kept))
