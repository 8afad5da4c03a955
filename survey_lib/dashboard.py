"""The training dashboard: every trainer's live curves in a notebook, nothing headless.

Used by every trainer, through `checkpoints.TrainingLoop` (reward models, verifiers, the
preference losses, PPO, RLOO, GRPO) and chapter 01's `rl_basics.train_towards_optimum`; and
by `book`, `widgets` and `site`, which ask whether output is live (`in_notebook`,
`live_widgets`, `STATIC_ENV`). Kept apart from `widgets` so that the training loop and the
site builder import nothing but this.
"""
from __future__ import annotations

import io
import os
import sys
import time

import numpy as np

DASHBOARDS = True
"""Whether trainers draw their live curves in a notebook; set False to keep only the progress bars."""


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (JupyterLab, Colab, papermill), not a script."""
    return "ipykernel" in sys.modules


STATIC_ENV = "SURVEY_STATIC_OUTPUT"
"""Set (to anything but "") while a notebook runs for a page with no kernel behind it (`make site`):
ipywidgets then show their headless form, which a static page can display."""


def live_widgets() -> bool:
    """Whether an ipywidgets control can be live: in a notebook whose output a kernel serves."""
    return in_notebook() and not os.environ.get(STATIC_ENV)


def figure_png(figure, dpi: int = 90) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


MAX_DRAW_SHARE = 0.05
"""Largest share of a run's wall time its live curves may take: a draw costs about 0.3-0.5 s
on a 2-core CPU, so a run waits 19 times the last draw's time before the next one."""


class LiveCurves:
    """A training run's statistics as curves, redrawn in place (loss, reward, KL and whatever
    else the trainer records): at the first and last steps, and in between at most every
    `every_seconds` and no more often than keeps drawing under `MAX_DRAW_SHARE` of the run.
    For a static page (`STATIC_ENV`), only the last step's curves are drawn. Runs started in
    the same notebook cell share one panel, each replacing the last, so a cell that fits many
    models shows the current one instead of a wall of plots.

    Made by `live_curves`, which returns None outside a notebook."""

    _panel: tuple[int, object] | None = None  # (the cell's execution count, its display handle)

    def __init__(self, title: str, every_seconds: float = 1.0):
        from IPython import get_ipython
        from IPython.display import display

        self.title, self.every_seconds, self.next_draw = title, every_seconds, -np.inf
        self.final_only = bool(os.environ.get(STATIC_ENV))
        cell = getattr(get_ipython(), "execution_count", None)
        if LiveCurves._panel is None or LiveCurves._panel[0] != cell:
            LiveCurves._panel = (cell, display(f"{title}: starting", display_id=True))
        self.handle = LiveCurves._panel[1]

    def update(self, history: list[dict], total: int | None = None) -> None:
        """Redraw from `history` (one dict per step) when due, and always at step `total`."""
        done = total is not None and len(history) >= total
        if not history or (not done and (self.final_only or time.monotonic() < self.next_draw)):
            return
        from IPython.display import Image
        from matplotlib.figure import Figure  # no pyplot: the chapter's own figures stay untouched

        started = time.monotonic()
        keys = [k for k, v in history[-1].items() if k != "step" and isinstance(v, (int, float))][:6]
        columns = min(3, len(keys)) or 1
        rows = max(1, -(-len(keys) // columns))
        figure = Figure(figsize=(3.3 * columns, 2.3 * rows))
        for i, key in enumerate(keys):
            ax = figure.add_subplot(rows, columns, i + 1)
            ax.plot([h.get(key, np.nan) for h in history], lw=1.2)
            ax.set(title=key, xlabel="step")
        progress = f"step {len(history)}" + (f" of {total}" if total else "")
        figure.suptitle(f"{self.title}: {progress}" + (" (done)" if done else ""), fontsize=10)
        figure.tight_layout()
        self.handle.update(Image(data=figure_png(figure)))
        took = time.monotonic() - started
        self.next_draw = started + max(self.every_seconds, took / MAX_DRAW_SHARE)


def live_curves(title: str) -> LiveCurves | None:
    """A `LiveCurves` dashboard in a notebook (unless `DASHBOARDS` is False); None headless."""
    return LiveCurves(title) if DASHBOARDS and in_notebook() else None
