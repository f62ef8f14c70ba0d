"""The chain's lab reports open offline: a notebook run by the lab runner (as ``make chain`` runs the
labs) with a panel-like widget tree — HTML, a FigureWidget whose traces are added after it was built,
tabs, an Output holding a plotly figure — and a plain plotly figure. Opened from disk in Chromium
with every network request refused, the page shows each widget as it ended and draws every figure."""
from __future__ import annotations

import json

import nbformat
import pytest

from .shim import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.notebook]

CELLS = [
    "import puyu_lab as pl\nprof, ws = pl.setup(profile=profile)\nimport puyu_lab.panels",
    """import ipywidgets as W, plotly.graph_objects as go
fig = go.FigureWidget()
out = W.Output()
out2 = W.Output()
tabs = W.Tab(children=[W.HTML("<i>first tab body</i>"), out], titles=("one", "two"))
panel = W.VBox([W.HTML("<b class='marker'>panel title 面板</b>"), fig, tabs, out2,
                W.Dropdown(options=["a", "b"], value="b", description="pick")])
panel""",
    """fig.add_scatter(x=[1, 2, 3], y=[3, 1, 2], name="late trace")   # after display: not in the saved state
fig.add_bar(x=["p", "q"], y=[1, 2], name="late bars")
fig.add_scatter(x=[1, 2, 3], y=[1.0, float("nan"), float("inf")], name="with nan")  # a diverged loss
with out:
    go.Figure(go.Scatter(x=[0, 1], y=[1, 0], name="inside output")).show()
panel.children[0].value = "<b class='marker'>panel final 最终</b>"
""",
    "go.Figure(go.Bar(x=['x', 'y'], y=[2, 1], name='plain figure'))",
    "with out2:\n    print('written by the last cell')",  # reaches the kernel only after the cell ended
]


@pytest.fixture
def offline(browser):
    """A page whose every network request is refused, and the list of what it asked for; closed when the test
    ends, pass or fail (a page left open kept its renderer busy beside the tests after it)."""
    page = browser.new_page()
    asked = []

    def refuse(route):
        asked.append(route.request.url)
        route.abort()

    page.route("http*://**/*", refuse)
    yield page, asked
    page.close()


def test_lab_report_renders_offline_with_every_panel_and_figure(tmp_path, offline):
    from playwright.sync_api import Error

    from puyu_lab.labrunner import run_lab
    from puyu_lab.workspace import Workspace

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("profile = 'quick'", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in CELLS]
    src = tmp_path / "labs" / "09_offline.ipynb"
    src.parent.mkdir()
    nbformat.write(nb, str(src))
    res = run_lab(src, tmp_path / "chain", profile="quick", workspace=Workspace(tmp_path / "ws"))
    assert res.ok, res.error
    page_path = tmp_path / "chain" / "09_offline.html"
    text = page_path.read_text(encoding="utf-8")
    assert "https://" not in "".join(l for l in text.splitlines() if "<script src" in l or "<link" in l)
    assert (tmp_path / "chain" / "plotly.min.js").is_file()
    assert not (tmp_path / "chain" / "09_offline.widgets.json").exists()
    # the executed notebook itself keeps its live widgets (JupyterLab renders those)
    executed = json.loads((tmp_path / "chain" / "09_offline.ipynb").read_text(encoding="utf-8"))
    assert "widgets" in executed["metadata"]

    page, asked = offline
    try:
        page.goto(page_path.as_uri())
        page.wait_for_function("() => document.querySelectorAll('.puyu-plot .main-svg').length >= 3", timeout=30_000)
    except Error:
        pytest.fail(f"figures not drawn offline; requests refused: {asked}")
    assert asked == [], f"the page asked the network for {asked}"
    assert page.locator(".marker").first.inner_text() == "panel final 最终"
    # (the code cells show the same words as source text, not as these elements)
    assert page.locator(".jp-OutputArea i", has_text="first tab body").count() == 1
    assert page.locator(".jp-OutputArea summary", has_text="two").count() == 1  # the tab titles
    assert page.locator(".jp-OutputArea pre", has_text="written by the last cell").count() == 1
    assert page.locator(".jp-OutputArea div", has_text="pick b").count() >= 1  # a control: label and value
    names = page.evaluate("() => [...document.querySelectorAll('.puyu-plot')].map(d => (d.data || []).map(t => t.name))")
    assert ["late trace", "late bars", "with nan"] in names and ["inside output"] in names and ["plain figure"] in names, names


DRAWN = """() => [...document.querySelectorAll('.puyu-plot')].map(e => e.querySelectorAll('svg.main-svg, canvas, img').length)"""


@pytest.mark.timeout(2700)
def test_chain_report_card_and_gradebook_open_offline(grading, offline, shots):
    """The chain report, every lab page it links, the report card and the teacher's gradebook, opened from
    disk with the network refused: every plotly figure has drawn content; the gradebook drills down."""
    from playwright.sync_api import Error

    chain_dir = grading.ws.root / "chain"
    pages = [chain_dir / "report.html", grading.ws.root / "report" / "index.html", grading.book.html_path]
    pages += sorted(chain_dir.glob("0*_*.html"))
    page, asked = offline
    drawn = {}
    for p in pages:
        page.goto(p.as_uri())
        n = page.locator(".puyu-plot").count()
        try:
            page.wait_for_function(f"() => ({DRAWN})().filter(c => c > 0).length === {n}", timeout=30_000)
        except Error:
            pytest.fail(f"{p.name}: figures not drawn offline ({page.evaluate(DRAWN)}); refused: {asked}")
        drawn[p.name] = page.evaluate(DRAWN)
    assert asked == [], f"pages asked the network for {asked}"
    for name in ("report.html", "index.html", "gradebook.html"):
        assert len(drawn[name]) >= 1 and all(drawn[name]), (name, drawn[name])
    # the chain report gives each lab's checks; the report card one row per check, all passed
    page.goto(pages[0].as_uri())
    cells = page.locator("tr[data-lab] td.checks").all_inner_texts()
    from puyu_lab.labrunner import discover

    assert len(cells) == len(discover()) and all(c.split("/")[0] == c.split("/")[1] for c in cells), cells
    page.goto(pages[1].as_uri())
    assert page.locator("tr[data-check][data-ok='1']").count() == page.locator("tr[data-check]").count() >= 20
    # the gradebook: one row per learner, mallory flagged; her drill-down lists the reasons
    page.goto(grading.book.html_path.as_uri())
    verdicts = {r.get_attribute("data-learner"): r.get_attribute("data-verdict")
                for r in page.locator("table.gradebook tr[data-learner]").all()}
    assert verdicts == {"alice": "ok", "bob": "incomplete", "mallory": "flagged"}
    box = page.locator("details.learner[data-learner='mallory']")
    box.locator("summary").click()
    text = box.inner_text()
    assert "metric edited" in text and "hidden probes selfcog" in text
    page.screenshot(path=str(shots / "gradebook.png"), full_page=True)
