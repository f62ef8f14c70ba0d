"""The report card as HTML: a fragment for the notebook, and a page under ``<workspace>/report/`` that
opens offline (plotly.js copied beside it, no CDN), plus ``checks.json`` for the sidebar and graders."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from ..i18n import tr
from .core import HOMEWORK_LEVELS, ReportCard

# JupyterLab right-aligns the cells of an HTML output (`:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td`,
# specificity 0-2-1) and centres its tables: the card's own rules are scoped under .puyu-report (0-2-2) to win, and
# each cell also carries the alignment inline (CELL_STYLE), which holds where a notebook's <style> is stripped
# (an untrusted notebook)
STYLE = """<style>
.puyu-card{font-family:system-ui,sans-serif;border-collapse:collapse;font-size:13px}
.puyu-card td,.puyu-card th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
.puyu-report table.puyu-card{margin-left:0;margin-right:auto;table-layout:auto}
.puyu-report table.puyu-card td,.puyu-report table.puyu-card th,.puyu-report table.puyu-card tr{text-align:left;
vertical-align:top;padding:3px 8px;white-space:normal}
.puyu-report{text-align:left}
.puyu-card .pass{color:#1e8e3e;font-weight:bold}.puyu-card .fail{color:#c5221f;font-weight:bold}
.puyu-card .lab td{background:#f3f3f3;font-weight:bold}.puyu-card .hint{color:#c5221f}
.puyu-card .dim{color:#777}.puyu-card .warn{color:#b06000}
.puyu-card .level{background:#eef3fb;color:#1a4f9c;border-radius:3px;padding:0 4px;font-size:12px}
</style>"""


CELL_STYLE = "text-align:left;vertical-align:top"
TABLE_STYLE = "margin-left:0;margin-right:auto"


def _aligned(fragment: str) -> str:
    """``fragment`` with the alignment written on each table and cell (see STYLE)."""
    import re

    fragment = re.sub(r"<(td|th)(?=[ >])", rf"<\1 style='{CELL_STYLE}'", fragment)
    return re.sub(r"<table(?=[ >])", f"<table style='{TABLE_STYLE}'", fragment)


def _esc(s) -> str:
    return html.escape(str(s))


def _rows(card: ReportCard, homework: bool) -> list[str]:
    rows, lab = [], None
    by_lab = card.by_lab(homework)
    for r in (card.homework if homework else card.required):
        if r.lab != lab:
            lab = r.lab
            p, t = by_lab[lab]
            rows.append(f"<tr class='lab'><td colspan=4>{_esc(lab)} — {p}/{t}</td></tr>")
        mark = "<span class='pass'>✓</span>" if r.ok else "<span class='fail'>✗</span>"
        note = ""
        if not r.ok:
            detail = r.detail_in()
            note = f"<div class='hint'>→ {_esc(r.hint_in())}</div>" + (f"<div class='dim'>{_esc(detail)}</div>" if detail else "")
        elif not r.consistent:
            note = "<div class='warn'>" + _esc(tr(f"清单写的是 {r.claimed:g}，证据算出 {r.value:g}",
                                                   f"the manifest says {r.claimed:g}, the evidence {r.value:g}")) + "</div>"
        camp = f"<div class='dim'>{tr('实战营任务', 'camp task')}: {_esc(r.camp)}</div>" if r.camp else ""
        scope = f" <span class='dim'>({tr('本机', 'this machine')})</span>" if r.scope == "machine" else ""
        level = (f"<span class='level'>{HOMEWORK_LEVELS[r.homework]} {r.homework}</span> "
                 if r.homework in HOMEWORK_LEVELS else "")
        rows.append(f"<tr data-check='{_esc(r.id)}' data-ok='{int(r.ok)}'><td>{mark}</td><td><code>{_esc(r.id)}</code></td>"
                    f"<td><b>{_esc(r.figure_in())}</b></td><td>{level}{_esc(r.title)}{scope}"
                    f"<div class='dim'>{_esc(r.verifies_in())}</div>{camp}{note}</td></tr>")
    return rows


def card_fragment(card: ReportCard) -> str:
    """The card as an HTML table (what the check cell shows): ✓/✗, figure, title, and for a failure its hint, in
    the current language (:func:`puyu_lab.i18n.get_language`); the homework tasks, if any, in a table of their
    own (optional: they do not count in the lab's checks)."""
    head_row = (f"<tr><th></th><th>{tr('自检', 'check')}</th><th>{tr('数字', 'figure')}</th>"
                f"<th>{tr('检查的内容', 'what it verifies')}</th></tr>")
    parts = []
    if card.required:
        head = ("<p><b>" + tr("成绩单", "Report card") + "</b>: " +
                tr(f"{card.passed}/{card.total} 项自检通过", f"{card.passed}/{card.total} checks passed") +
                f" <span class='dim'>({card.seconds:.1f} s, {_esc(card.created)})</span></p>")
        parts.append(f"{head}<table class='puyu-card'>{head_row}{''.join(_rows(card, False))}</table>")
    if card.homework:
        done = sum(r.ok for r in card.homework)
        head = ("<p><b>" + tr("作业", "Homework") + "</b>: " +
                tr(f"完成 {done}/{len(card.homework)} 项（选做，不影响自检）",
                   f"{done}/{len(card.homework)} done (optional: they do not count in the self-checks)") + "</p>")
        parts.append(f"{head}<table class='puyu-card puyu-homework'>{head_row}{''.join(_rows(card, True))}</table>")
    return f"{STYLE}<div class='puyu-report'>{_aligned(''.join(parts))}</div>"


def labs_figure(card: ReportCard) -> dict:
    """Checks passed and failed per lab, as a plotly figure dict (stacked bars)."""
    import plotly.graph_objects as go

    by = card.by_lab()
    labs = list(by)
    fig = go.Figure([go.Bar(name=tr("通过", "passed"), x=labs, y=[by[l][0] for l in labs], marker_color="#1e8e3e"),
                     go.Bar(name=tr("未通过", "failed"), x=labs, y=[by[l][1] - by[l][0] for l in labs], marker_color="#c5221f")])
    fig.update_layout(barmode="stack", height=260, margin=dict(l=40, r=10, t=30, b=40),
                      title=tr("每个实验的自检", "Checks per lab"), yaxis_title=tr("自检项", "checks"))
    return fig.to_plotly_json()


def page(title: str, body: str, with_plots: bool) -> str:
    from ..panels.snapshot import PLOT_SCRIPT, PLOTLY_JS

    scripts = f"<script src='{PLOTLY_JS}'></script>{PLOT_SCRIPT}" if with_plots else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>{scripts}"
            f"<style>body{{font-family:system-ui,sans-serif;margin:1.5em}}</style></head><body>{body}</body></html>")


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(card: ReportCard, out_dir: Path) -> Path:
    """``index.html`` (the card and its figure, offline) and ``checks.json`` under ``out_dir``."""
    from ..htmlassets import ship_plotly
    from ..panels.snapshot import PLOTLY_JS, plotly_div

    out_dir = Path(out_dir)
    body = (f"<h1>书生·浦语 puyu-lab — {tr('成绩单', 'Report card')}</h1>"
            f"<p class='dim'>{tr('工作区', 'workspace')} {_esc(card.workspace)}</p>"
            f"{plotly_div(labs_figure(card), 260)}{card_fragment(card)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    ship_plotly(out_dir / PLOTLY_JS)
    write_atomic(out_dir / "checks.json", json.dumps(card.as_dict(), ensure_ascii=False, indent=1))
    path = out_dir / "index.html"
    write_atomic(path, page(tr("puyu-lab 成绩单", "puyu-lab report card"), body, True))
    return path
