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
(measured on seed 0: 500 s), but is not listed yet: it peaked at 9.3 GB (the budget is 4 GB),
and its tiny band for experiment b does not hold there (DPO raised the chosen
log-likelihood, +4.2 nats), so it needs bands of its own on small. Where the memory goes,
probed on 2026-12-03 (16 pairs, `batch_size=8`, after `completion_logprobs` stopped taking the
softmax over prompt positions): loading SmolLM2 530 MB, sampling the pairs 1.5 GB, one DPO
epoch 3.8 GB peak, and 3.0 GB still held after it, of which glibc's `malloc_trim(0)` returns
1.2 GB (freed heap kept in its arenas). The `colab` and `gpu` profiles need the Hub, so no
size of theirs has been run yet; none is listed.
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
