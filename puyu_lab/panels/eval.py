"""EvalPanel — leaderboard, grouped bars per task, radar across tasks, per-sample browser.

The browser shows each sample's prompt, gold answer, and every model's answer and score, with a
filter for the samples where two chosen models disagree.
"""
from __future__ import annotations

import html

import ipywidgets as W
import plotly.graph_objects as go

from ..i18n import t
from .base import CSS, PALETTE, esc, html_table


def _main(run, task):
    return task.main_metric


def bars_figure(run) -> go.Figure:
    fig = go.Figure()
    tasks = [x for x in run.tasks if x.kind != "perplexity"]
    for i, m in enumerate(run.models):
        got = [run.metrics.get(m, {}).get(x.name, {}) for x in tasks]
        # the 95 % interval (±1.96 standard errors): how far a figure on this many documents can be trusted
        err = [1.96 * (g.get(f"{x.main_metric}_stderr") or 0.0) for g, x in zip(got, tasks)]
        fig.add_bar(name=m, x=[x.name for x in tasks], y=[g.get(x.main_metric) for g, x in zip(got, tasks)],
                    error_y={"type": "data", "array": err, "visible": True, "thickness": 1},
                    marker_color=PALETTE[i % len(PALETTE)])
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=36, b=30), title=t("eval_bars"),
                      yaxis=dict(range=[0, 1]))
    return fig


def radar_figure(run) -> go.Figure:
    tasks = [x for x in run.tasks if x.kind != "perplexity"]
    fig = go.Figure()
    for i, m in enumerate(run.models):
        vals = [run.metrics.get(m, {}).get(x.name, {}).get(x.main_metric) or 0 for x in tasks]
        fig.add_scatterpolar(r=vals + vals[:1], theta=[x.name for x in tasks] + [tasks[0].name], name=m, fill="toself",
                             line=dict(color=PALETTE[i % len(PALETTE)]), opacity=0.6)
    fig.update_layout(height=340, margin=dict(l=30, r=30, t=36, b=20), title=t("eval_radar"),
                      polar=dict(radialaxis=dict(range=[0, 1])))
    return fig


class EvalPanel:
    def __init__(self, run):
        self.run = run
        self.leader = W.HTML()
        self.bars = go.Figure(bars_figure(run))
        self.radar = go.Figure(radar_figure(run))
        self.bars_out, self.radar_out = W.Output(), W.Output()
        names = [x.name for x in run.tasks]
        self.task = W.Dropdown(options=names, value=names[0], description=t("task"))
        self.model_a = W.Dropdown(options=run.models, value=run.models[0], description="A")
        self.model_b = W.Dropdown(options=run.models, value=run.models[-1], description="B")
        self.only_diff = W.Checkbox(value=False, description=t("only_disagree"))
        self.browser = W.HTML()
        for w in (self.task, self.model_a, self.model_b, self.only_diff):
            w.observe(lambda ch: self._draw_samples(), names="value")
        with self.bars_out:
            self.bars.show()
        with self.radar_out:
            self.radar.show()
        self.ui = W.VBox([W.HTML(CSS + f"<div class='puyu'><h4>{esc(t('eval_panel'))}</h4></div>"), self.leader,
                          W.HBox([self.bars_out, self.radar_out]),
                          W.HTML(f"<div class='puyu'><h4>{esc(t('sample_browser'))}</h4></div>"),
                          W.HBox([self.task, self.model_a, self.model_b, self.only_diff]), self.browser])
        self._draw_leader()
        self._draw_samples()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)

    def leaderboard(self) -> list[dict]:
        return self.run.summary()

    def _draw_leader(self) -> None:
        rows = []
        for r in self.leaderboard():
            rows.append({k: (f"{v:.4f}" if isinstance(v, float) else ("—" if v is None else v)) for k, v in r.items()})
        self.leader.value = CSS + "<div class='puyu'>" + html_table(rows, ["dataset", "metric", "mode", *self.run.models],
                                                                     labels={m: m for m in self.run.models} |
                                                                     {"dataset": t("dataset"), "metric": t("metric"),
                                                                      "mode": t("mode")}) + "</div>"

    def samples(self) -> list[dict]:
        """The rows the browser shows now (tests read this)."""
        return self.run.side_by_side(self.task.value, self.model_a.value, self.model_b.value, self.only_diff.value)

    def _draw_samples(self) -> None:
        rows = self.samples()
        cols = ["#", "prompt", "gold", *self.run.models]
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                       for r in rows[:200])
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        self.browser.value = (CSS + f"<div class='puyu'><div class='dim'>{len(rows)} {esc(t('samples_shown'))}</div>"
                              f"<table class='puyu-table'><tr>{head}</tr>{body}</table></div>")
