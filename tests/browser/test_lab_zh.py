"""A Chinese learner's view, in a real JupyterLab and Debian Chromium (issue 38: "a browser test shows a zh lab and a
zh panel"; "Chromium screenshots of lab 01 and lab 08 in zh show Chinese explanation, panel and report card").

JupyterLab runs as ``puyu-lab lab`` runs it for a zh learner (``Lab(..., lang="zh")``): its own interface in zh_CN (the
zh-CN language pack) and the kernels with ``PUYU_LAB_LANG=zh``.

1. Lab 01 on a fresh workspace, every cell run in the page: JupyterLab's menus are Chinese; the visible markdown is
   Chinese (``pl.setup`` hides the ``.lang-en`` blocks); the cleaning panel's labels, the self-check cell's report card
   and the 书生·浦语 sidebar are Chinese.
2. Lab 08 on a copy of the whole chain's workspace, run in the page up to and including its self-check cell: the
   visible markdown, the agent trace panel drawn by the lab's own cell and the report card are Chinese.

Screenshots: ``test-artifacts/browser/zh-*.png``; what each assertion measured (CJK shares, English-only lines the
page still shows): ``test-artifacts/browser/zh-measures.json``.
"""
from __future__ import annotations

import json
import shutil
import time

import pytest

from puyu_lab.i18n import FIGURES, STRINGS
from puyu_lab.labtext import cjk_share, english_only_sentences

from .conftest import Lab, open_lab
from .test_lab_browser import CELL_ERRORS, RUN_ALL, RUN_ALL_ABOVE, cell, cell_index, open_notebook, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

# ---- JavaScript run in the page --------------------------------------------------------------------------------
# The text a reader sees under ``root``: text nodes whose element is rendered (checkVisibility: no display:none on it
# or an ancestor, not visibility:hidden, not opacity 0), leaving out style/script and what matches ``skip``.
# (Cells out of view are skipped by content-visibility: auto, but keep their boxes: they count.)
VISIBLE_TEXT = """(root, skip) => {
  const vis = (e) => e.checkVisibility({opacityProperty: true, visibilityProperty: true});
  const parts = [];
  const w = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = w.nextNode(); n; n = w.nextNode()) {
    const p = n.parentElement;
    if (!p || p.closest('style, script') || (skip && p.closest(skip)) || !vis(p)) continue;
    const t = n.data.trim();
    if (t) parts.push(t);
  }
  return parts;
}"""
# The rendered markdown of the notebook in front: visible prose and visible code (inline code, code blocks) apart,
# and how many language blocks of each language there are and are visible.
MARKDOWN_TEXT = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content.node;
  const vis = (e) => e.checkVisibility({opacityProperty: true, visibilityProperty: true});
  const roots = [...nb.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown')];
  const prose = [], code = [];
  for (const r of roots) {
    const w = document.createTreeWalker(r, NodeFilter.SHOW_TEXT);
    for (let n = w.nextNode(); n; n = w.nextNode()) {
      const p = n.parentElement;
      if (!p || p.closest('style, script') || !vis(p) || !n.data.trim()) continue;
      (p.closest('code, pre') ? code : prose).push(n.data.trim());
    }
  }
  const blocks = (lang) => [...nb.querySelectorAll('.jp-RenderedMarkdown .lang-' + lang)];
  return {cells: roots.length, prose, code,
          zh: {total: blocks('zh').length, visible: blocks('zh').filter(vis).length},
          en: {total: blocks('en').length, visible: blocks('en').filter(vis).length}};
}"""
# Code cells up to ``upto`` (exclusive) that have not run (no execution count) or are still running ([*])
NOT_RUN = """(upto) => window.jupyterapp.shell.currentWidget.content.widgets.slice(0, upto)
  .map((c, i) => [c, i]).filter(([c]) => c.model.type === 'code' && c.model.sharedModel.getSource().trim()
    && (c.model.executionCount === null || c.node.querySelector('.jp-InputPrompt').textContent.includes('*')))
  .map(([, i]) => i)"""
# What the notebook in front printed (its stdout outputs), one string per output
PRINTED = """() => [...window.jupyterapp.shell.currentWidget.node.querySelectorAll(
  '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]')].map(e => e.textContent)"""
MENUS = "() => [...document.querySelectorAll('#jp-MainMenu .lm-MenuBar-itemLabel')].map(e => e.textContent.trim())"

# the sidebar's Chinese (extensions/puyu_lab_chain/src/index.ts: WORDS, ROLE_ZH), in the chain's order
SIDEBAR_TITLE_ZH = "书生·浦语 全链路"
ROLES_ZH = ["数据", "预训练", "微调", "偏好对齐", "强化学习", "部署与量化", "评测", "智能体", "检索增强"]
BADGES_ZH = {"present": "已就绪", "stale": "已过期", "missing": "缺失"}
# the cleaning panel's labels (puyu_lab/panels/data.py), each looked up in puyu_lab.i18n.STRINGS
DATA_PANEL_LABELS = ("funnel", "histogram", "samples", "clusters", "pii", "reason", "signal", "threshold", "language",
                     "gopher_repetition", "gopher_quality", "fineweb", "c4", "exact_dedup", "near_dedup", "pii_scrub",
                     "export", "kept", "documents")
# the agent trace's labels (puyu_lab/panels/agent.py: both(key), Chinese first)
TRACE_LABELS = ("agent_trace", "question", "turn", "prompt_sent", "raw_output", "parse_result")


def record(key: str, value) -> None:
    """What an assertion measured, for the report: test-artifacts/browser/zh-measures.json (merged run by run)."""
    from .conftest import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "zh-measures.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    doc[key] = value
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def zh(key: str) -> str:
    return STRINGS[key][1]


def en(key: str) -> str:
    return STRINGS[key][0]


def run_in_page(page, script: str, arg=None, *, upto: int | None = None) -> float:
    """Run cells in the page (``RUN_ALL`` or ``RUN_ALL_ABOVE`` with ``arg``), then: no cell error, every code cell
    up to ``upto`` ran. Returns the seconds it took."""
    t0 = time.monotonic()
    page.evaluate(script, arg)
    wait_idle(page, 600)
    seconds = time.monotonic() - t0
    assert page.evaluate(CELL_ERRORS) == []
    n = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.length") if upto is None else upto
    assert page.evaluate(NOT_RUN, n) == []
    return seconds


def output_box(page, idx: int):
    """The output area of the ``idx``-th cell, in view."""
    box = cell(page, idx).locator(".jp-Cell-outputWrapper")
    box.scroll_into_view_if_needed()
    return box


def check_markdown(page, lab: str) -> dict:
    """The visible markdown is Chinese: every English block hidden, every Chinese one shown, and CJK characters make
    up most letters (headings name both languages; code is the same in both)."""
    md = page.evaluate(MARKDOWN_TEXT)
    prose, code = "\n".join(md["prose"]), "\n".join(md["code"])
    got = {"markdown_cells": md["cells"], "zh_blocks": md["zh"], "en_blocks": md["en"],
           "cjk_share_prose": round(cjk_share(prose), 3), "cjk_share_with_code": round(cjk_share(prose + code), 3),
           "english_only_fragments": english_only_sentences(prose)}  # (text nodes: split at bold, code, links)
    record(f"{lab}.markdown", got)
    assert md["en"]["total"] >= 5 and md["en"]["visible"] == 0, md["en"]  # pl.setup's style hides them
    assert md["zh"]["visible"] == md["zh"]["total"] == md["en"]["total"], md["zh"]
    assert got["cjk_share_prose"] >= 0.7, got
    assert got["cjk_share_with_code"] >= 0.55, got
    return got


def check_card(page, idx: int, lab: str) -> list[str]:
    """The self-check cell's report card (puyu_lab.checks.report.card_fragment) in Chinese: its heading, its column
    heads, each check's title (Chinese first) and what it verifies, in Chinese and not in English."""
    from puyu_lab.checks import select

    box = output_box(page, idx)
    card = box.locator(".puyu-report").first
    card.wait_for(timeout=30_000)
    text = card.evaluate(VISIBLE_TEXT, None)
    joined = "\n".join(text)
    checks = select(lab)
    n = len(checks)
    record(f"{lab}.report_card", {"cjk_share": round(cjk_share(joined), 3),
                                  "english_only_lines": english_only_sentences(joined),
                                  "checks_without_verifies_zh": [c.id for c in checks if not c.verifies_zh]})
    assert "成绩单" in text and f": {n}/{n} 项自检通过" in text, text[:3]
    assert "Report card" not in joined and "checks passed" not in joined, joined[:300]
    assert {"自检", "数字", "检查的内容"} <= set(text), text[:8]  # the column heads
    for c in checks:
        assert c.id in text and c.title in text, (c.id, c.title)  # the title: "语料规模 Corpus size", Chinese first
        assert joined.index(c.zh) < joined.index(c.en), (c.id, c.title)
        assert c.verifies_zh and c.verifies_zh in text, (c.id, c.verifies_zh)  # what it verifies, in Chinese only
        assert c.verifies not in joined, (c.id, c.verifies)
    # what each check measured (the figure column) holds no English sentence, and the card reads left-aligned
    figures = card.locator("tr[data-check] td:nth-child(3)").all_inner_texts()
    assert len(figures) >= n and english_only_sentences("\n".join(figures), min_words=3) == [], figures
    align = card.locator("tr[data-check] td").evaluate_all("els => els.map(e => getComputedStyle(e).textAlign)")
    assert align and set(align) == {"left"}, set(align)
    assert card.locator("table.puyu-card").first.evaluate("e => getComputedStyle(e).marginLeft") == "0px"
    return text


# ---- 1: lab 01 on a fresh workspace -------------------------------------------------------------------------------
# Class-scoped: the server and kernel of lab 01 end with TestLab01InChinese, before the chain's labs
# (TestLab07InChinese) start (the chain ends any kernel still running then, and fails the run for it).
@pytest.fixture(scope="class")
def zh01(browser, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zh01")
    lab = Lab(tmp / "workspace", tmp, lang="zh")
    page = None
    try:
        page = open_lab(browser, lab)
        page.set_viewport_size({"width": 1500, "height": 1200})  # room for the panel in one screenshot
        open_notebook(page, "01_data.ipynb")
        seconds = run_in_page(page, RUN_ALL)
        record("01_data.run_all_seconds", round(seconds, 1))
        yield lab, page
    finally:
        if page is not None:
            page.close()
        lab.shutdown_kernels()
        lab.stop()


def scroll_to_top(page, idx: int) -> None:
    """The ``idx``-th cell at the top of the notebook's view (again once the cells above have their real heights:
    content-visibility estimates the height of cells out of view)."""
    for _ in range(2):
        cell(page, idx).evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(700)


class TestLab01InChinese:
    @pytest.mark.timeout(900)
    def test_menus_and_markdown_are_chinese(self, zh01, shots):
        lab, page = zh01
        menus = page.evaluate(MENUS)
        record("jupyterlab.menus", menus)
        assert {"文件", "编辑", "运行", "内核", "设置", "帮助"} <= set(menus), menus
        assert not {"File", "Edit", "Run", "Kernel", "Settings", "Help"} & set(menus), menus
        check_markdown(page, "01_data")
        scroll_to_top(page, 0)
        page.screenshot(path=str(shots / "zh-01-markdown.png"))

    @pytest.mark.timeout(900)
    def test_cleaning_panel_labels_are_chinese(self, zh01, shots):
        lab, page = zh01
        idx = cell_index(page, "DataCleaningPanel(run, ws)")
        box = output_box(page, idx)
        box.locator(".js-plotly-plot .gtitle, .js-plotly-plot .annotation-text").first.wait_for(timeout=60_000)
        box.locator("text=/\\d+ \\/ [\\d,]+ " + zh("documents") + "/").first.wait_for(timeout=60_000)  # the status line
        labels = box.evaluate(VISIBLE_TEXT, ".puyu-table")  # the dropped samples' own text is data, not a label
        joined = "\n".join(labels)
        record("01_data.panel", {"cjk_share_labels": round(cjk_share(joined), 3), "labels": labels})
        for key in DATA_PANEL_LABELS:
            assert zh(key) in joined, (key, zh(key))
        for key in DATA_PANEL_LABELS[:-2]:  # not "kept"/"documents": English words a label may contain
            assert en(key) not in joined, (key, en(key))
        assert f"书生·万卷 {zh('funnel')}" in labels
        assert any(s.startswith(f"{zh('histogram')}:") for s in labels), labels  # the plot's own subplot title
        assert cjk_share(joined) >= 0.4, joined
        box.screenshot(path=str(shots / "zh-01-panel.png"))

    @pytest.mark.timeout(900)
    def test_report_card_is_chinese(self, zh01, shots):
        lab, page = zh01
        idx = cell_index(page, 'checks.verify("01_data", ws)')
        check_card(page, idx, "01_data")
        output_box(page, idx).screenshot(path=str(shots / "zh-01-report-card.png"))
        record("01_data.printed_english_only", english_only_sentences("\n".join(page.evaluate(PRINTED))))

    @pytest.mark.timeout(900)
    def test_sidebar_is_chinese(self, zh01, shots):
        lab, page = zh01
        page.click("li.lm-TabBar-tab[data-id='puyu-lab-chain']")
        side = page.locator("#puyu-lab-chain")
        # the data lab ran in the page: its stage is present, with its checks counted
        page.wait_for_selector("#puyu-lab-chain .puyu-stage[data-stage='data'][data-status='present'] "
                               ".puyu-checks[data-total]", timeout=60_000)
        assert side.get_attribute("lang") == "zh-CN"
        assert side.locator(".puyu-chain-title").inner_text() == SIDEBAR_TITLE_ZH
        assert page.get_attribute("li.lm-TabBar-tab[data-id='puyu-lab-chain']", "title") == SIDEBAR_TITLE_ZH
        assert side.locator(".puyu-stage-en").all_inner_texts() == ROLES_ZH
        stages = side.locator(".puyu-stage")
        for i in range(stages.count()):
            st = stages.nth(i)
            status = st.get_attribute("data-status")
            assert st.locator(".puyu-badge").first.inner_text() == BADGES_ZH[status]
            assert st.locator("button.puyu-open-lab").inner_text().startswith("打开实验 ")
        checks = side.locator(".puyu-checks").all_inner_texts()
        assert checks and all(c.startswith("自检 ") for c in checks), checks
        assert side.locator(".puyu-chain-info").inner_text().startswith("工作区: ")
        assert all(n.startswith("需要: ") for n in side.locator(".puyu-needs").all_inner_texts())
        # each artifact's key figures: the Chinese label (puyu_lab.i18n.FIGURES), the metric's key in the tooltip
        figs = side.locator(".puyu-figure")
        shown = [(figs.nth(i).get_attribute("title"), figs.nth(i).inner_text()) for i in range(figs.count())]
        record("sidebar.figures", shown)
        assert len(shown) >= 4, shown  # corpus/clean's
        for key, text in shown:
            assert key in FIGURES and text.startswith(FIGURES[key][1] + "="), (key, text)
        text = side.evaluate(VISIBLE_TEXT, "code, .puyu-figures, .puyu-chain-info, .puyu-needs")
        record("sidebar", {"cjk_share_without_names_paths_figures": round(cjk_share("\n".join(text)), 3),
                           "text": text})
        for word in ("present", "missing", "Open ", "checks ", "Workspace", "needs", "Chain"):
            assert word not in "\n".join(text), word
        side.screenshot(path=str(shots / "zh-sidebar.png"))


# ---- 2: lab 08 on the whole chain's workspace ------------------------------------------------------------------------
@pytest.fixture(scope="class")
def zh08(browser, chain, tmp_path_factory):
    failed = [r for r in chain.run_all() if not r.ok]
    if failed:
        pytest.skip(f"the chain failed at {failed[0].lab}")
    tmp = tmp_path_factory.mktemp("zh08")
    # a copy: the snapshot stays as the chain left it for the other tests
    shutil.copytree(chain.snapshot.root, tmp / "workspace", symlinks=True)
    lab = Lab(tmp / "workspace", tmp, lang="zh")
    page = None
    try:
        page = open_lab(browser, lab)
        page.set_viewport_size({"width": 1500, "height": 1200})
        open_notebook(page, "08_agent.ipynb")
        check_cell = cell_index(page, 'checks.verify("08_agent", ws)')
        # every cell up to and including the self-check cell: the lab as a learner runs it, without its homework
        seconds = run_in_page(page, RUN_ALL_ABOVE, check_cell + 1, upto=check_cell + 1)
        record("08_agent.run_to_self_check_seconds", round(seconds, 1))
        yield lab, page, check_cell
    finally:
        if page is not None:
            page.close()
        lab.shutdown_kernels()
        lab.stop()
        shutil.rmtree(tmp / "workspace", ignore_errors=True)


class TestLab08InChinese:
    # the first of these to run sets up the whole chain (once per session): the chain's timeout
    @pytest.mark.timeout(2700)
    def test_markdown_is_chinese(self, zh08, shots):
        lab, page, _ = zh08
        check_markdown(page, "08_agent")
        scroll_to_top(page, cell_index(page, "panel = AgentTracePanel()") - 1)  # section 3's text, the trace below
        page.screenshot(path=str(shots / "zh-08-markdown.png"))

    @pytest.mark.timeout(2700)
    def test_trace_panel_is_chinese(self, zh08, shots):
        lab, page, _ = zh08
        box = output_box(page, cell_index(page, "panel = AgentTracePanel()"))
        trace = box.locator(".puyu-trace")
        trace.locator(".pt-step").first.wait_for(timeout=30_000)
        text = trace.evaluate(VISIBLE_TEXT, None)
        joined = "\n".join(text)
        diagnoses = trace.locator(".pt-diagnosis").all_text_contents()
        badge = trace.locator(".pt-status")
        record("08_agent.trace_panel", {"cjk_share": round(cjk_share(joined), 3), "text": text,
                                        "status": badge.inner_text(), "diagnoses": diagnoses})
        # the status badge and the token units in Chinese; each diagnosis in Chinese (the zh of puyu_lab.agent.diagnose)
        assert badge.inner_text() == zh(f"status_{badge.get_attribute('data-status')}"), badge.inner_text()
        metas = trace.locator(".pt-turnbar .pt-meta").all_inner_texts()
        assert metas and all(zh("tokens") in m and " tokens " not in m for m in metas), metas
        label = f"{zh('why_no_tool')} {en('why_no_tool')}"
        assert all(d.startswith(label) and cjk_share(d[len(label):][:12]) > 0.5 for d in diagnoses), diagnoses  # its opening
        assert text[0] == f"{zh('agent_trace')} {en('agent_trace')}", text[:3]  # the title, Chinese first
        for key in TRACE_LABELS:
            assert f"{zh(key)} {en(key)}" in joined, key
        kinds = trace.locator(".pt-step").evaluate_all("els => els.map(e => e.dataset.kind)")
        shown = trace.locator(".pt-step .pt-kind").all_inner_texts()
        assert shown == [f"{zh('step_' + k)} {en('step_' + k)}" for k in kinds], (kinds, shown)
        if diagnoses:
            assert zh("why_no_tool") in joined
        assert "37*41 等于多少？" in joined
        box.screenshot(path=str(shots / "zh-08-panel.png"))

    @pytest.mark.timeout(2700)
    def test_report_card_is_chinese(self, zh08, shots):
        lab, page, check_cell = zh08
        check_card(page, check_cell, "08_agent")
        # what the self-check cell prints around its card: Chinese only
        printed = output_box(page, check_cell).locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stdout']").all_text_contents()
        record("08_agent.self_check_printed", printed)
        assert printed and english_only_sentences("\n".join(printed)) == [], printed
        output_box(page, check_cell).screenshot(path=str(shots / "zh-08-report-card.png"))
        record("08_agent.printed_english_only", english_only_sentences("\n".join(page.evaluate(PRINTED))))
