"""Figures for the lesson "watch in-context learning appear": the copy probe over training tokens beside the
induction threshold N ≈ 10^5.7·√(B·C), each attention head's prefix-matching score, and one head's attention.

Plain ``go.Figure`` builders over data the engines recorded (the course build's probe curve, the learner's
manifest, :func:`puyu_lab.models.probes.induction_scores`); nothing here computes a figure of its own.
"""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..models.probes import induction_threshold
from .base import PALETTE


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
    fig.update_layout(xaxis={"title": "training tokens", "type": "log"}, yaxis={"title": "copy gain (nats/token)"},
                      height=380, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                      title="copying from the context vs training tokens")
    return fig


def head_scores_figure(scores_by_model: dict[str, list[list[float]]]) -> go.Figure:
    """One heatmap per model: layers × heads, each head's prefix-matching score (0–1)."""
    names = list(scores_by_model)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    for i, n in enumerate(names, 1):
        s = scores_by_model[n]
        fig.add_trace(go.Heatmap(z=s, zmin=0, zmax=1, colorscale="Blues", showscale=i == len(names),
                                 x=[f"head {h}" for h in range(len(s[0]))], y=[f"layer {l}" for l in range(len(s))],
                                 text=[[f"{v:.2f}" for v in row] for row in s], texttemplate="%{text}"), 1, i)
    fig.update_layout(height=300, margin={"l": 60, "r": 20, "t": 40, "b": 30},
                      title="prefix-matching score per attention head")
    return fig


def attention_figure(pattern: list[list[float]], length: int, title: str) -> go.Figure:
    """One head's attention over a random run shown twice: an induction head draws a stripe one token right of
    the diagonal that starts at the second showing."""
    fig = go.Figure(go.Heatmap(z=pattern, colorscale="Viridis", zmin=0, zmax=1))
    fig.add_shape(type="line", x0=1.5, y0=length + 0.5, x1=length + 0.5, y1=2 * length - 0.5,
                  line={"color": "white", "dash": "dot", "width": 1})
    fig.update_layout(height=420, width=460, title=title, margin={"l": 40, "r": 20, "t": 40, "b": 40},
                      xaxis={"title": "attends to position"}, yaxis={"title": "query position", "autorange": "reversed"})
    return fig
