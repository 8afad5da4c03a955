"""Views a reader plays with in JupyterLab (ipywidgets); plain text headless.

Used by chapter 01 (`beta_explorer`, a slider) and by chapters 04 and 07 (`frontier_explorer`:
methods to show, and the samples of the one picked). In a notebook a view redraws in place
when a control moves; in a script, in CI, or for a static page (`make site`), it prints what
it would show, so headless output stays plain text. The trainers' live curves are
`dashboard.LiveCurves`.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_range
from .dashboard import figure_png, live_widgets
from .plots import frontier_scatter
from .world.enumerable import EnumerableTask

def beta_figure_png(task: EnumerableTask, beta: float) -> bytes:
    """pi_ref and pi* at `beta` over every sequence, ordered by reward, as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: a widget's redraw must not touch global figures

    order = np.argsort(task.rewards.numpy())
    figure = Figure(figsize=(7, 2.8))
    ax = figure.subplots()
    x = np.arange(task.num_sequences)
    ax.fill_between(x, task.ref_logprobs().exp().numpy()[order], step="mid", color="0.75", label="π_ref")
    ax.plot(x, task.optimal_logprobs(beta).exp().numpy()[order], drawstyle="steps-mid", color="C1", label=f"π*, β = {beta:.3g}")
    ax.set(xlabel="sequence, ordered by reward r(y) (lowest left)", ylabel="probability", title="π* ∝ π_ref · exp(r / β)")
    ax.legend(loc="upper left", fontsize=8)
    return figure_png(figure)


def beta_summary_line(task: EnumerableTask, beta: float) -> str:
    summary = task.optimum_summary(beta)
    return (f"β = {beta:.3g}: E_π*[r] = {summary['expected_reward']:.3f}, "
            f"KL(π* ‖ π_ref) = {summary['kl_to_reference']:.3f} nats")


def beta_explorer(task: EnumerableTask, beta: float, *, low: float = 0.05, high: float = 20.0):
    """A slider for β that redraws π* ∝ π_ref·exp(r/β) with its expected reward and its KL to
    π_ref (chapter 01, section 4). Returns the widget in a notebook; headless or for a static
    page, prints both numbers for β from `low` to `high` and returns None."""
    check_range("low", low, 0, low_open=True)
    check_range("high", high, low, low_open=True)
    check_range("beta", beta, low, high)
    if not live_widgets():
        for b in sorted({*np.geomspace(low, high, 7).round(3), beta}):
            print(beta_summary_line(task, float(b)))
        return None
    import ipywidgets as widgets

    slider = widgets.FloatLogSlider(value=beta, base=10, min=np.log10(low), max=np.log10(high), step=0.02,
                                    description="β", continuous_update=False, readout_format=".3g")
    summary = widgets.HTML(beta_summary_line(task, beta))
    image = widgets.Image(value=beta_figure_png(task, beta), format="png")

    def redraw(change):
        summary.value = beta_summary_line(task, change["new"])
        image.value = beta_figure_png(task, change["new"])

    slider.observe(redraw, names="value")
    return widgets.VBox([slider, summary, image])


def frontier_png(points: dict[str, dict], shown: list[str], y: str, selected: str | None) -> bytes:
    """The reward-vs-KL plane with the methods in `shown`, `selected` ringed, as a PNG."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.6))
    ax = figure.subplots()
    frontier_scatter(ax, {name: points[name] for name in shown}, y)
    if selected in shown:
        ax.scatter(points[selected]["kl"], points[selected][y], s=220, facecolors="none", edgecolors="k", zorder=4)
    ax.set(xlabel="KL(π || π_SFT), nats", ylabel=f"mean {y} reward", title=f"{y.capitalize()} reward vs KL")
    return figure_png(figure)


def samples_html(name: str, samples: list[tuple[str, str, float]]) -> str:
    import html

    rows = "".join(f"<tr><td>{html.escape(str(p))}</td><td>{html.escape(c)}</td><td>{g:+.2f}</td></tr>" for p, c, g in samples)
    return f"<b>{html.escape(name)}</b>: samples<table><tr><th>prompt</th><th>response</th><th>gold</th></tr>{rows}</table>"


def frontier_explorer(points: dict[str, dict], samples: dict[str, list[tuple[str, str, float]]], *, y: str = "gold"):
    """The methods of a frontier (chapters 04 and 07) on the reward-vs-KL plane: tick the
    methods to show, pick one to ring its point and read its samples ((prompt, response,
    gold) triples). Returns the widget in a notebook; headless or for a static page, prints
    one sample per method and returns None."""
    missing = sorted(set(samples) - set(points))
    if missing or not samples:
        raise ValueError(f"samples name methods with no point {missing}; methods with points: {', '.join(points)}")
    if not live_widgets():
        for name, rows in samples.items():
            prompt, response, gold = rows[0]
            print(f"{name:18s} gold {gold:+.2f}  {prompt!s:.40} -> {response!s:.80}")
        return None
    import ipywidgets as widgets

    boxes = {name: widgets.Checkbox(value=True, description=name, indent=False, layout={"width": "auto"}) for name in points}
    pick = widgets.Dropdown(options=list(samples), description="samples of")
    image = widgets.Image(format="png")
    table = widgets.HTML()

    def redraw(_=None):
        shown = [name for name, box in boxes.items() if box.value]
        image.value = frontier_png(points, shown, y, pick.value)
        table.value = samples_html(pick.value, samples[pick.value])

    for control in (*boxes.values(), pick):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([widgets.VBox(list(boxes.values())), image]), pick, table])
