"""What every chapter does around its content: parameters, seeds, figures, metrics.

Defined for the foundation; each chapter opens with `chapter = Chapter("NN_slug", globals())`
right after its parameters cell and ends with `chapter.finish({...})`.

Parameters are overridden by one mechanism, the same for every chapter:

    python chapters/01_rl_basics.py seed=1 bandit_arms=20     # headless, key=value
    papermill chapters/01_rl_basics.ipynb out.ipynb -p seed 1   # a notebook

Each profile's sizes come from `survey_lib.sizes`: on a profile other than `tiny`, the
parameters it lists replace the cell's values, except those set on the command line.

Results go to `results/` under the working directory (or `$SURVEY_RESULTS_DIR`):
`results/NN_slug.json` (headline metrics, parameters, wall time, peak memory) and
`results/figures/NN_slug-<name>.png`.
"""
from __future__ import annotations

import json
import os
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ._checks import check_range
from .profiles import get_profile
from .sizes import chapter_sizes
from .dashboard import in_notebook

PARAMETER_TYPES = (bool, int, float, str)


def results_dir() -> Path:
    return Path(os.environ.get("SURVEY_RESULTS_DIR", "results"))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: Linux's VmHWM, which starts afresh at exec.
    getrusage's ru_maxrss carries the parent's peak across fork and exec, so a chapter
    started by a test process that had loaded SmolLM2 reported that process's 2.5 GB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:  # no /proc: not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def on_colab() -> bool:
    return "google.colab" in sys.modules


def format_value(value) -> str:
    """A metric as the book prints it: floats to 4 significant digits, dicts inline."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _parse(name: str, text: str, default):
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"parameter {name} expects true or false, got {text!r}")
        return text.lower() in ("true", "1")
    try:
        return type(default)(text)
    except ValueError:
        raise ValueError(f"parameter {name} expects {type(default).__name__}, got {text!r}") from None


def apply_overrides(namespace: dict, argv: list[str]) -> dict:
    """Set `key=value` arguments on the parameters already defined in `namespace`.

    Each value is parsed with the type of the parameter's default; an unknown name or a
    value of the wrong type raises ValueError naming the parameter. Returns the changes.
    """
    parameters = {k: v for k, v in namespace.items() if not k.startswith("_") and type(v) in PARAMETER_TYPES}
    changes = {}
    for arg in argv:
        name, sep, text = arg.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {arg!r}; parameters: {', '.join(parameters)}")
        if name not in parameters:
            raise ValueError(f"unknown parameter {name!r}; parameters: {', '.join(parameters)}")
        changes[name] = _parse(name, text, parameters[name])
    namespace.update(changes)
    return changes


def select_methods(methods: dict, names: str) -> dict:
    """The entries of `methods` that a chapter's comma-separated parameter `names` picks, in
    `methods`' order: "all", or names, each a key or the first word of keys (a family: "DPO"
    picks "DPO β=0.1" and "DPO β=1"). Chapter 07 trains only these on the text world, so
    that a slower profile can run a few."""
    if names.strip() == "all":
        return dict(methods)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if not any(n in (key, key.split(" ")[0]) for key in methods)]
    if unknown or not wanted:
        raise ValueError(f"no method named {', '.join(map(repr, unknown)) or 'at all'} in {names!r}; "
                         f"choose \"all\" or from: {', '.join(methods)}")
    return {key: value for key, value in methods.items() if key in wanted or key.split(" ")[0] in wanted}


class Chapter:
    """A chapter's run: applies overrides, seeds, saves figures, writes metrics.

    Args:
        slug: "NN_slug", the chapter's file name.
        namespace: the chapter's `globals()`, holding its parameters (it must define
            `profile` and `seed`).
    """

    def __init__(self, slug: str, namespace: dict):
        self.slug, self.started = slug, time.time()
        changes = {} if in_notebook() else apply_overrides(namespace, sys.argv[1:])  # in Jupyter, argv is the kernel's
        self.profile = get_profile(namespace["profile"])
        sized = {k: v for k, v in chapter_sizes(slug, self.profile.name).items() if k not in changes}
        unknown = sorted(set(sized) - set(namespace))
        if unknown:
            raise ValueError(f"survey_lib/sizes.py sets {unknown} for {slug}, which has no such parameters")
        if sized:
            namespace.update(sized)
            print(f"profile {self.profile.name}: " + ", ".join(f"{k}={v}" for k, v in sized.items()) + " (survey_lib/sizes.py)")
        if on_colab() and self.profile.name == "tiny" and torch.cuda.is_available():
            print('this runtime has a GPU: set profile = "colab" in the parameters cell to run a Hub model with QLoRA '
                  "(the tiny profile runs the CPU zoo)")
        check_range("seed", namespace["seed"], 0)
        seed_everything(namespace["seed"])
        self.parameters = {k: v for k, v in namespace.items() if not k.startswith("_") and type(v) in PARAMETER_TYPES}

    def show(self, figure, name: str) -> None:
        """Save a matplotlib figure as results/figures/<slug>-<name>.png and display it."""
        path = results_dir() / "figures" / f"{self.slug}-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110, bbox_inches="tight")
        if in_notebook():  # show the saved PNG: works whatever matplotlib backend the kernel has
            from IPython.display import Image, display

            display(Image(filename=str(path)))
        import matplotlib.pyplot as plt

        plt.close(figure)

    def finish(self, headline: dict, details: dict | None = None) -> None:
        """Write results/<slug>.json: the headline metrics (asserted by the tests),
        optional details, the parameters, the wall time since this Chapter was created
        (imports before it excluded: tests time the whole process) and peak memory."""
        record = {
            "chapter": self.slug,
            "headline": headline,
            "details": details or {},
            "parameters": self.parameters,
            "wall_seconds": round(time.time() - self.started, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        path = results_dir() / f"{self.slug}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2, default=float) + "\n")
        tmp.replace(path)  # atomic: a reader never sees half a file
        if in_notebook():  # a reader gets a table; scripts and CI keep the one JSON line
            from IPython.display import Markdown, display

            rows = "\n".join(f"| {k} | {format_value(v)} |" for k, v in headline.items())
            display(Markdown(f"**{self.slug}: the headline** (also in `{path}`)\n\n| metric | value |\n|---|---|\n{rows}"))
        else:
            print(json.dumps({"chapter": self.slug, **headline}, default=float))
