"""The report card as HTML: a fragment for the notebook, and a page under ``<workspace>/report/`` that
opens offline (plotly.js copied beside it, no CDN), plus ``checks.json`` for the sidebar and graders."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from .core import ReportCard

STYLE = """<style>
.puyu-card{font-family:system-ui,sans-serif;border-collapse:collapse;font-size:13px}
.puyu-card td,.puyu-card th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
.puyu-card .pass{color:#1e8e3e;font-weight:bold}.puyu-card .fail{color:#c5221f;font-weight:bold}
.puyu-card .lab td{background:#f3f3f3;font-weight:bold}.puyu-card .hint{color:#c5221f}
.puyu-card .dim{color:#777}.puyu-card .warn{color:#b06000}
</style>"""


def _esc(s) -> str:
    return html.escape(str(s))


def card_fragment(card: ReportCard) -> str:
    """The card as an HTML table (what the check cell shows): ✓/✗, figure, title, and for a failure its hint in
    the current language (:func:`puyu_lab.i18n.get_language`)."""
    rows = []
    by_lab = card.by_lab()
    lab = None
    for r in card.results:
        if r.lab != lab:
            lab = r.lab
            p, t = by_lab[lab]
            rows.append(f"<tr class='lab'><td colspan=4>{_esc(lab)} — {p}/{t}</td></tr>")
        mark = "<span class='pass'>✓</span>" if r.ok else "<span class='fail'>✗</span>"
        note = ""
        if not r.ok:
            note = f"<div class='hint'>→ {_esc(r.hint_in())}</div>" + (f"<div class='dim'>{_esc(r.detail)}</div>" if r.detail else "")
        elif not r.consistent:
            note = f"<div class='warn'>the manifest says {r.claimed:g}, the evidence {r.value:g}</div>"
        camp = f"<div class='dim'>实战营 camp: {_esc(r.camp)}</div>" if r.camp else ""
        scope = " <span class='dim'>(this machine)</span>" if r.scope == "machine" else ""
        rows.append(f"<tr data-check='{_esc(r.id)}' data-ok='{int(r.ok)}'><td>{mark}</td><td><code>{_esc(r.id)}</code></td>"
                    f"<td><b>{_esc(r.figure)}</b></td><td>{_esc(r.title)}{scope}<div class='dim'>{_esc(r.verifies)}</div>"
                    f"{camp}{note}</td></tr>")
    head = (f"<p><b>成绩单 Report card</b>: {card.passed}/{card.total} checks passed "
            f"<span class='dim'>({card.seconds:.1f} s, {_esc(card.created)})</span></p>")
    return (f"{STYLE}<div class='puyu-report'>{head}<table class='puyu-card'><tr><th></th><th>check</th>"
            f"<th>figure</th><th>what it verifies</th></tr>{''.join(rows)}</table></div>")


def labs_figure(card: ReportCard) -> dict:
    """Checks passed and failed per lab, as a plotly figure dict (stacked bars)."""
    import plotly.graph_objects as go

    by = card.by_lab()
    labs = list(by)
    fig = go.Figure([go.Bar(name="通过 passed", x=labs, y=[by[l][0] for l in labs], marker_color="#1e8e3e"),
                     go.Bar(name="未通过 failed", x=labs, y=[by[l][1] - by[l][0] for l in labs], marker_color="#c5221f")])
    fig.update_layout(barmode="stack", height=260, margin=dict(l=40, r=10, t=30, b=40),
                      title="每个实验的自检 Checks per lab", yaxis_title="checks")
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
    body = (f"<h1>书生·浦语 puyu-lab — 成绩单 Report card</h1><p class='dim'>workspace {_esc(card.workspace)}</p>"
            f"{plotly_div(labs_figure(card), 260)}{card_fragment(card)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    ship_plotly(out_dir / PLOTLY_JS)
    write_atomic(out_dir / "checks.json", json.dumps(card.as_dict(), ensure_ascii=False, indent=1))
    path = out_dir / "index.html"
    write_atomic(path, page("puyu-lab report card", body, True))
    return path
