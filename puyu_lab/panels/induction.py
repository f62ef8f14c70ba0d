"""Figures for the lesson "watch in-context learning appear": the copy probe over training tokens beside the
induction threshold N ≈ 10^5.7·√(B·C), each attention head's prefix-matching score, and one head's attention.

Plain ``go.Figure`` builders over data the engines recorded (the course build's probe curve, the learner's
manifest, :func:`puyu_lab.models.probes.induction_scores`); nothing here computes a figure of its own.
"""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..i18n import t
from ..models.probes import induction_threshold
from .base import PALETTE, WorkerWait


threshold_tokens = induction_threshold  # the lesson's name for it


def copy_curve_figure(curves: list[dict], points: list[dict]) -> go.Figure:
    """``curves``: ``{"name", "batch_x_context", "curve": [{"tokens", "gain"}, …]}`` (the course build's phases);
    ``points``: ``{"name", "tokens", "gain", "batch_x_context"}`` (a finished model, e.g. the learner's). Each
    B·C's threshold is a dotted vertical line."""
    fig = go.Figure()
    for i, c in enumerate(curves):
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=[p["tokens"] for p in c["curve"]], y=[p["gain"] for p in c["curve"]],
                                 mode="lines+markers", name=c["name"], line={"color": color}))
    for j, p in enumerate(points):
        fig.add_trace(go.Scatter(x=[p["tokens"]], y=[p["gain"]], mode="markers+text", text=[p["name"]],
                                 textposition="top center", name=p["name"],
                                 marker={"size": 12, "symbol": "star", "color": PALETTE[(len(curves) + j) % len(PALETTE)]}))
    for bc in sorted({c["batch_x_context"] for c in curves} | {p["batch_x_context"] for p in points}):
        fig.add_vline(x=threshold_tokens(bc), line={"dash": "dot", "color": "#888"},
                      annotation_text=f"B·C={bc}: {threshold_tokens(bc) / 1e6:.1f} M", annotation_position="top left")
    fig.update_layout(xaxis={"title": t("training_tokens"), "type": "log"}, yaxis={"title": t("copy_gain")},
                      height=380, margin={"l": 50, "r": 20, "t": 40, "b": 40}, title=t("copy_curve_title"))
    return fig


def head_scores_figure(scores_by_model: dict[str, list[list[float]]]) -> go.Figure:
    """One heatmap per model: layers × heads, each head's prefix-matching score (0–1)."""
    names = list(scores_by_model)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    for i, n in enumerate(names, 1):
        s = scores_by_model[n]
        fig.add_trace(go.Heatmap(z=s, zmin=0, zmax=1, colorscale="Blues", showscale=i == len(names),
                                 x=[f"{t('head')} {h}" for h in range(len(s[0]))],
                                 y=[f"{t('layer')} {l}" for l in range(len(s))],
                                 text=[[f"{v:.2f}" for v in row] for row in s], texttemplate="%{text}"), 1, i)
    fig.update_layout(height=300, margin={"l": 60, "r": 20, "t": 40, "b": 30},
                      title=t("head_scores_title"))
    return fig


def attention_figure(pattern: list[list[float]], length: int, title: str) -> go.Figure:
    """One head's attention over a random run shown twice: an induction head draws a stripe one token right of
    the diagonal that starts at the second showing."""
    fig = go.Figure(go.Heatmap(z=pattern, colorscale="Viridis", zmin=0, zmax=1))
    fig.add_shape(type="line", x0=1.5, y0=length + 0.5, x1=length + 0.5, y1=2 * length - 0.5,
                  line={"color": "white", "dash": "dot", "width": 1})
    fig.update_layout(height=420, width=460, title=title, margin={"l": 40, "r": 20, "t": 40, "b": 40},
                      xaxis={"title": t("attends_to")}, yaxis={"title": t("query_position"), "autorange": "reversed"})
    return fig


class LessonPanel(WorkerWait):
    """The lesson's live view: the loss on the first and the second showing of a repeated run, step by step
    (the engine's ``lesson`` events), the cliff's step when it comes, a Stop button. The run goes in a worker
    thread (:meth:`start`), so Stop reaches it."""

    def __init__(self):
        import ipywidgets as W

        from ..events import StopFlag
        from ..i18n import both, t
        from .base import CSS, Throttle, esc

        self.stop, self.points, self.last, self.thread, self.result, self.error = StopFlag(), [], {}, None, None, None
        self.fig = go.FigureWidget()
        for i, key in enumerate(("first_showing", "second_showing")):
            self.fig.add_scatter(x=[], y=[], mode="lines+markers", name=t(key), line={"color": PALETTE[i]})
        self.fig.update_layout(height=320, margin={"l": 50, "r": 20, "t": 30, "b": 40},
                               xaxis={"title": t("step")}, yaxis={"title": t("nll_per_token"), "rangemode": "tozero"},
                               legend={"orientation": "h", "y": -0.2})
        self.status = W.HTML()
        self.stop_btn = W.Button(description=t("stop"), button_style="danger", icon="stop", disabled=True)
        self.stop_btn.on_click(lambda _: (self.stop.set(), setattr(self.stop_btn, "disabled", True)))
        self.ui = W.VBox([W.HTML(CSS + f"<div class='puyu'><h4>{esc(both('lesson_title'))}</h4></div>"),
                          W.HBox([self.stop_btn, self.status]), self.fig])
        self._t, self._esc = t, esc
        self._draw = Throttle(self._redraw)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)

    def __call__(self, e) -> None:
        if e.kind == "start":
            self.fig.add_hline(y=e.data["uniform_nll"], line={"dash": "dot", "color": "#888"},
                               annotation_text=f"log V = {e.data['uniform_nll']:.2f}")
        elif e.kind == "lesson":
            self.points.append(e.data)
        self.last = {**self.last, **e.data, "kind": e.kind}
        self._draw()

    def _redraw(self) -> None:
        t, pts = self._t, list(self.points)
        with self.fig.batch_update():
            for trace, key in zip(self.fig.data, ("first_nll", "second_nll")):
                trace.x = [p["step"] for p in pts]
                trace.y = [p[key] for p in pts]
        if pts:
            p, cliff = pts[-1], self.last.get("cliff_step")
            said = f"{t('cliff_at')}: <b>{cliff}</b>" if cliff is not None else t("no_cliff_yet")
            self.status.value = (f"<span class='puyu'>{t('step')} <b>{p['step']}</b> · {p['seconds']:.0f} s · "
                                 f"{t('first_showing')} {p['first_nll']:.2f} · {t('second_showing')} "
                                 f"<b>{p['second_nll']:.2f}</b> · {said}</span>")

    def start(self, fn) -> "LessonPanel":
        """Run ``fn(on_event=self, stop=self.stop)`` in a worker thread."""
        from .base import run_in_thread

        self.stop.clear()
        self.stop_btn.disabled = False

        def done(result, error):
            self.result, self.error = result, error
            self.stop_btn.disabled = True
            self._draw.flush()

        self.thread = run_in_thread(lambda: fn(on_event=self, stop=self.stop), on_done=done, name="puyu-lesson")
        return self

    def flush(self) -> None:
        """Draw what the throttle still holds now."""
        self._draw.flush()
