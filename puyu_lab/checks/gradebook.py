"""The gradebook a grading run writes: one :class:`Row` per bundle, ``gradebook.csv`` (a spreadsheet-safe table:
no cell a spreadsheet would read as a formula) and ``gradebook.html`` (offline: the jinja2 template
``templates/gradebook.html.j2``, a learners × checks heatmap, plotly.js beside it)."""
from __future__ import annotations

import csv
import functools
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Msg, localized
from ..i18n import tr

# a row's verdict (the CSV and the page's data-verdict keep the English key) and how the teacher reads it
VERDICTS = {"ok": Msg("ok", "通过"), "incomplete": Msg("incomplete", "未完成"), "flagged": Msg("flagged", "有疑点")}
# where a check's result comes from (Row.checks' "source")
SOURCES = {"re-checked": Msg("re-checked", "已复查"), "reported": Msg("reported", "学员自报")}


@dataclass
class Row:
    bundle: str
    learner: str = ""
    created: str = ""
    environment: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)  # id → {"status", "figure", "source": "re-checked" | "reported", "lab"}
    probes: dict = field(default_factory=dict)  # group id → {"passed", "total", "rate", "ok", "rows"}
    flags: list[str] = field(default_factory=list)  # each a Msg: the English, with its Chinese as .zh
    fingerprints: dict = field(default_factory=dict)  # model name → sha256 of its weights (copies across bundles)
    homework: dict = field(default_factory=dict)  # 作业 task id → {"status", "figure", "lab", "level"} (optional)

    @property
    def homework_done(self) -> int:
        return sum(h["status"] == "pass" for h in self.homework.values())

    @property
    def passed(self) -> int:
        return sum(c["status"] == "pass" for c in self.checks.values())

    @property
    def verdict(self) -> str:
        if self.flags:
            return "flagged"
        done = all(c["status"] == "pass" for c in self.checks.values()) and all(p["ok"] for p in self.probes.values())
        return "ok" if done else "incomplete"


@dataclass
class Gradebook:
    rows: list[Row]
    csv_path: Path
    html_path: Path


def _columns(rows: list[Row]) -> tuple[list[str], list[str]]:
    check_ids: list[str] = []
    probe_ids: list[str] = []
    for r in rows:
        for cid in sorted(r.checks, key=lambda c: (r.checks[c]["lab"], c)):
            if cid not in check_ids:
                check_ids.append(cid)
        for gid in r.probes:
            if gid not in probe_ids:
                probe_ids.append(gid)
    return check_ids, probe_ids


def write_gradebook(rows: list[Row], out_dir: Path) -> Gradebook:
    from .report import STYLE, page, write_atomic
    from ..htmlassets import ship_plotly
    from ..panels.snapshot import PLOTLY_JS, plotly_div

    out_dir.mkdir(parents=True, exist_ok=True)
    check_ids, probe_ids = _columns(rows)
    buf = io.StringIO()
    w = csv.writer(buf)

    def cell(v):  # a spreadsheet must not read a learner's text as a formula
        v = str(v)
        return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
    hw_ids = sorted({h for r in rows for h in r.homework}, key=lambda h: (rows and next(
        (r.homework[h]["lab"] for r in rows if h in r.homework), ""), h))
    w.writerow([cell(c) for c in ["learner", "bundle", "verdict", "checks_passed", "checks_total", *check_ids,
                                  *[f"probe:{g}" for g in probe_ids], "homework_done", "homework_total",
                                  *[f"homework:{h}" for h in hw_ids], "flags"]])
    for r in rows:
        w.writerow([cell(c) for c in [r.learner, r.bundle, r.verdict, r.passed, len(r.checks),
                    *[(r.checks.get(c) or {}).get("status", "") for c in check_ids],
                    *[f"{r.probes[g]['passed']}/{r.probes[g]['total']}" if g in r.probes else "" for g in probe_ids],
                    r.homework_done, len(r.homework), *[(r.homework.get(h) or {}).get("status", "") for h in hw_ids],
                    " | ".join(localized(f) for f in r.flags)]])
    csv_path = out_dir / "gradebook.csv"
    write_atomic(csv_path, buf.getvalue())

    fig = _heatmap(rows, check_ids, probe_ids)
    html_body = _templates().get_template("gradebook.html.j2").render(
        rows=rows, check_ids=check_ids, probe_ids=probe_ids, style=STYLE,
        figure=plotly_div(fig, 120 + 28 * len(rows)), tr=tr)
    ship_plotly(out_dir / PLOTLY_JS)
    html_path = out_dir / "gradebook.html"
    write_atomic(html_path, page(tr("puyu-lab 成绩册", "puyu-lab gradebook"), html_body, True))
    return Gradebook(rows, csv_path, html_path)


@functools.cache
def _templates():
    """The jinja2 templates under ``checks/templates/`` (the gradebook's page), autoescaped."""
    import jinja2

    from .core import HOMEWORK_LEVELS

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["by_lab"] = lambda checks: sorted(checks.items(), key=lambda kv: (kv[1]["lab"], kv[0]))
    env.filters["environment_line"] = lambda facts: ", ".join(f"{k}={v}" for k, v in facts.items() if k != "packages")
    env.filters["localized"] = localized  # a flag (a Msg) in the current language
    env.filters["verdict"] = lambda v: localized(VERDICTS.get(v, v))
    env.filters["source"] = lambda v: localized(SOURCES.get(v, v))
    env.filters["level"] = lambda v: f"{HOMEWORK_LEVELS[v]} {v}" if v in HOMEWORK_LEVELS else v  # as the report card
    return env


def _heatmap(rows: list[Row], check_ids: list[str], probe_ids: list[str]) -> dict:
    """Learners × checks (1 passed, 0 failed), probe groups as their pass rate: one glance per class."""
    import plotly.graph_objects as go

    cols = check_ids + [tr(f"探针:{g}", f"probe:{g}") for g in probe_ids]
    z, text = [], []
    for r in rows:
        zr, tx = [], []
        for c in check_ids:
            st = r.checks.get(c)
            zr.append(None if st is None else float(st["status"] == "pass"))
            tx.append("" if st is None else st["figure"])
        for g in probe_ids:
            p = r.probes.get(g)
            zr.append(None if p is None else p["rate"])
            tx.append("" if p is None else f"{p['passed']}/{p['total']}")
        z.append(zr)
        text.append(tx)
    esc = lambda v: html.escape(str(v))  # noqa: E731 — plotly renders tags in labels (a link in a learner's name)
    text = [[esc(t) for t in tx] for tx in text]
    fig = go.Figure(go.Heatmap(z=z, x=[esc(c) for c in cols], y=[esc(r.learner or r.bundle) for r in rows], text=text,
                               zmin=0, zmax=1,
                               colorscale=[[0, "#c5221f"], [0.5, "#fbbc04"], [1, "#1e8e3e"]], showscale=False,
                               hovertemplate="%{y} · %{x}<br>%{text}<extra></extra>"))
    fig.update_layout(height=120 + 28 * len(rows), margin=dict(l=120, r=10, t=20, b=100),
                      title=tr("学员 × 自检", "Learners × checks"))
    return fig.to_plotly_json()
