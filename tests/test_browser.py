"""The reader's JupyterLab, in a real browser (issue 20): Debian's Chromium driven by Playwright.

JupyterLab runs from the project's environment on a free localhost port, with the settings
the project ships (binder/overrides.json) and its own empty user settings. The tests run
chapter 01 as a reader would (Run All), move its β slider, open every other chapter and a
chapter's `.py` through jupytext, and save screenshots under results/browser/.

Needs `/usr/bin/chromium` (`apt-get install chromium`; `.ci/run` installs it) and the
`playwright` package. Where either is missing they are skipped, except in CI, where they fail.
"""
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "results" / "browser"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

pytestmark = pytest.mark.browser


def require_browser():
    missing = [what for what, ok in (("Debian's chromium (apt-get install chromium)", Path(CHROMIUM).exists()),
                                     ("the playwright package (pip install playwright)", _has_playwright())) if not ok]
    if missing:
        message = "the browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _has_playwright() -> bool:
    return importlib.util.find_spec("playwright") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The URL of a JupyterLab serving the repository, with no token."""
    require_browser()
    home = tmp_path_factory.mktemp("lab")
    for plugin, values in {
        "notebook-extension/tracker": {"windowingMode": "none"},  # every cell in the DOM, so the test sees each output
        "docmanager-extension/plugin": {"autosave": False},  # the chapters' files stay as committed, without outputs
    }.items():
        path = home / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "SURVEY_RESULTS_DIR": str(home / "results"), "HF_HUB_OFFLINE": "1"}
    env.pop("MPLBACKEND", None)  # the kernel's own inline backend, as a reader has it
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={ROOT}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly", "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=(home / "server.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    committed = {path: path.read_bytes() for path in (ROOT / "chapters").glob("[0-9][0-9]_*")}
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"jupyter lab exited: {(home / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert [p.name for p, text in committed.items() if p.read_bytes() != text] == [], "JupyterLab wrote a chapter"


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()


KERNEL_IDLE = """() => { const w = window.jupyterapp?.shell.currentWidget;
    return w?.sessionContext?.session?.kernel?.status === 'idle'; }"""
ALL_RUN = """() => { const w = window.jupyterapp.shell.currentWidget; const cells = w.content.model.cells;
    for (let i = 0; i < cells.length; i++) { const c = cells.get(i);
        if (c.type === 'code' && c.executionCount === null) return false; }
    return w.sessionContext.session.kernel.status === 'idle'; }"""
OUTPUT_TYPES = """() => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells; const types = [];
    for (let i = 0; i < cells.length; i++) { const c = cells.get(i);
        if (c.type === 'code') for (const o of c.outputs.toJSON()) types.push(o.output_type === 'error' ? 'error: ' + o.ename + ': ' + o.evalue : o.output_type); }
    return types; }"""
TAGGED_PARAMETERS = """() => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
    for (let i = 0; i < cells.length; i++) { if ((cells.get(i).getMetadata('tags') || []).includes('parameters')) return i; }
    return -1; }"""


def open_in_lab(page, lab: str, path: str, factory: str | None = None) -> None:
    """Open `path` in JupyterLab (with `factory`, e.g. jupytext's, when given) and wait for its kernel."""
    page.goto(f"{lab}/lab?reset", wait_until="domcontentloaded")  # no tabs restored from an earlier page
    page.wait_for_function("() => window.jupyterapp?.started !== undefined", timeout=60_000)
    page.evaluate("() => window.jupyterapp.started")
    args = {"path": path, **({"factory": factory} if factory else {})}
    page.evaluate("args => window.jupyterapp.commands.execute('docmanager:open', args)", args)
    page.wait_for_function(KERNEL_IDLE, timeout=90_000)


def test_chapter_01_runs_all_cells_in_jupyterlab_with_figures_and_a_live_beta_slider(lab, page):
    open_in_lab(page, lab, "chapters/01_rl_basics.ipynb")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_RUN, timeout=180_000, polling=500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "01_rl_basics-top.png")

    outputs = page.evaluate(OUTPUT_TYPES)
    assert not [o for o in outputs if o.startswith("error")], outputs
    figures = (ROOT / "chapters" / "01_rl_basics.py").read_text().count("chapter.show(")
    images = page.locator(".jp-OutputArea-output img")
    page.wait_for_function("n => [...document.querySelectorAll('.jp-OutputArea-output img')].filter(i => i.naturalWidth > 0).length >= n",
                           arg=figures + 2, timeout=30_000)  # each chapter.show, the β explorer's picture, the training curves
    assert images.count() >= figures + 2
    training = page.locator(".jp-CodeCell", has_text="train_towards_optimum(task, config)").first
    training.locator(".jp-OutputArea-output img").first.scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "01_rl_basics-training_curves.png")

    slider = page.locator(".widget-slider").first
    slider.scroll_into_view_if_needed()
    summary = page.locator(".widget-html-content", has_text="E_π*[r]").first
    picture = page.locator(".widget-image").first
    before, before_src = summary.inner_text(), picture.get_attribute("src")
    page.screenshot(path=SHOTS / "01_rl_basics-beta_explorer-before.png")
    handle = slider.locator(".noUi-handle").first
    handle.focus()
    for _ in range(20):
        handle.press("ArrowLeft")
    page.wait_for_function("before => [...document.querySelectorAll('.widget-html-content')].some(e => e.innerText.includes('E_π*[r]') && e.innerText !== before)",
                           arg=before, timeout=30_000)
    page.wait_for_function("src => document.querySelector('.widget-image').getAttribute('src') !== src", arg=before_src, timeout=30_000)
    # every redraw of the held keys done: the kernel idle, and the picture unchanged for a second
    # (a screenshot taken at the first idle moment once showed the picture one key behind)
    deadline, src = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        page.wait_for_function(KERNEL_IDLE, timeout=30_000)
        if src == (src := picture.get_attribute("src")):
            break
        page.wait_for_timeout(1000)
    after = summary.inner_text()
    page.screenshot(path=SHOTS / "01_rl_basics-beta_explorer-after.png")
    shown_beta = float(after.split("β = ")[1].split(":")[0])
    assert shown_beta < float(before.split("β = ")[1].split(":")[0])
    assert float(slider.locator(".widget-readout").inner_text()) == pytest.approx(shown_beta, abs=1e-3)
    # the headline is a table in a notebook, not a JSON line
    assert page.locator(".jp-RenderedMarkdown table", has_text="reinforce_kl_end").count() == 1
    # the project's settings switch off JupyterLab's news question
    assert page.locator(".jp-Notification-Toast", has_text="news").count() == 0


@pytest.mark.parametrize("notebook", [p for p in CHAPTERS if p.stem != "01_rl_basics"], ids=lambda p: p.stem)
def test_every_other_chapter_opens_with_its_kernel_and_parameters_cell(lab, page, notebook):
    open_in_lab(page, lab, f"chapters/{notebook.name}")
    assert page.evaluate(TAGGED_PARAMETERS) >= 0
    page.locator(".jp-Notebook").first.wait_for()
    page.screenshot(path=SHOTS / f"{notebook.stem}-opened.png")
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")


def test_a_chapters_py_opens_as_a_notebook_through_jupytext(lab, page):
    open_in_lab(page, lab, "chapters/03_reward_models.py", factory="Jupytext Notebook")
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.content.model.cells.length") > 10
    assert page.evaluate(TAGGED_PARAMETERS) >= 0
    page.screenshot(path=SHOTS / "03_reward_models-py-as-notebook.png")
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")


@pytest.fixture(scope="module")
def site(tmp_path_factory, browser):
    """The book's site with chapter 01 (`make site` builds every chapter the same way), served on localhost."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "SURVEY_RESULTS_DIR": str(out / "results")}
    subprocess.run([sys.executable, "-m", "survey_lib.site", "--chapters", "01_rl_basics", "--out", str(out)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(out / "html")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(60):
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.25)
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_the_rendered_book_shows_its_contents_math_and_figures_without_the_network(site, page):
    outside = []

    def local_only(route):  # a request anywhere but this machine is recorded and refused
        host = route.request.url.split("/")[2] if "://" in route.request.url else ""
        if host.split(":")[0] in ("127.0.0.1", "localhost", "") or route.request.url.startswith("data:"):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", local_only)
    page.goto(f"{site}/index.html", wait_until="load")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "site-index.png", full_page=True)
    readme_rows = (ROOT / "README.md").read_text().count("\n| 0") + (ROOT / "README.md").read_text().count("\n| 10")
    table = page.locator("table").first
    assert table.locator("tbody tr").count() == readme_rows  # every chapter, planned ones included
    assert table.locator("a", has_text="RL basics").count() == 1 and table.locator("a", has_text="01_rl_basics.py").count() == 1

    table.locator("a", has_text="RL basics").click()
    page.wait_for_load_state("load")
    page.wait_for_function("() => window.MathJax?.Hub?.Queue", timeout=30_000)
    page.evaluate("() => window.MathJax.Hub.Queue(() => { window.typesetDone = true; })")  # runs after the page's typesetting
    page.wait_for_function("() => window.typesetDone", timeout=60_000)
    # MathJax, served by the site, has typeset every display and inline formula
    assert page.locator("div.math .MathJax_Display").count() == page.locator("div.math").count() > 0
    assert page.locator("span.math.notranslate .MathJax").count() == page.locator("span.math.notranslate").count() > 10
    assert page.locator("text=/(MathJax.*error|failed to load)/i").count() == 0
    page.wait_for_function("() => [...document.querySelectorAll('img')].filter(i => i.naturalWidth > 100).length >= 4", timeout=30_000)
    assert page.locator("text=β = 0.5: E_π*[r]").count() >= 1  # the β explorer in its static form
    page.locator("img").nth(1).scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "site-01_rl_basics.png")
    page.evaluate("() => document.querySelectorAll('div.math')[2].scrollIntoView()")  # section 4's display math
    page.screenshot(path=SHOTS / "site-01_rl_basics-math.png")
    assert outside == [], outside
