"""PreferencePanel — the training panel plus DPO's own view: rewards of chosen and rejected, their
margin and the reward accuracy (trl's ``rewards/*`` metrics, training and held-out), and the held-out
preference accuracy per source before and after. :func:`inspect_pairs` is the pair inspector: each
held-out pair's prompt, chosen and rejected answers with their log-probabilities before and after.

A view: everything drawn comes from the engine's events (``log`` / ``eval`` with ``extra``, ``data``,
``preference``) or from the run's saved ``heldout_scores.jsonl``.
"""
from __future__ import annotations

import ipywidgets as W
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..events import Event
from ..i18n import t
from .base import CSS, PALETTE, HTMLView, esc
from .pretrain import TrainingPanel

CURVES = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


class PreferencePanel(TrainingPanel):
    def __init__(self, title: str = "XTuner · DPO"):
        self.pref_pts: dict[str, list[tuple[int, float]]] = {k: [] for k in CURVES}
        self.pref_eval: dict[str, list[tuple[int, float]]] = {k: [] for k in CURVES}
        self.before: dict | None = None
        self.after: dict | None = None
        super().__init__(title)

    def _build(self) -> None:
        super()._build()
        self.pref_fig = go.FigureWidget(make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38],
                                                      subplot_titles=(t("rewards_dpo"), t("reward_accuracy"))))
        names = {"rewards/chosen": t("chosen"), "rewards/rejected": t("rejected"), "rewards/margins": t("margin")}
        for i, k in enumerate(CURVES[:3]):
            self.pref_fig.add_scatter(x=[], y=[], mode="lines", name=names[k], line=dict(color=PALETTE[i]), row=1, col=1)
        self.pref_fig.add_scatter(x=[], y=[], mode="lines", name=t("train"), line=dict(color=PALETTE[3]), row=1, col=2)
        self.pref_fig.add_scatter(x=[], y=[], mode="lines+markers", name=t("heldout"), line=dict(color=PALETTE[4]),
                                  row=1, col=2)
        self.pref_fig.update_layout(height=300, margin=dict(l=10, r=10, t=36, b=30), legend=dict(orientation="h", y=-0.2))
        self.pref_fig.update_yaxes(range=[0, 1.02], row=1, col=2)
        self.pref_fig.update_xaxes(title_text=t("step"))
        self.source_html = W.HTML()
        self.ui.children = (*self.ui.children[:4], self.pref_fig, self.source_html)

    def __call__(self, e: Event) -> None:
        d = e.data
        extra = d.get("extra") or {}
        if e.kind in ("log", "eval"):
            target = self.pref_pts if e.kind == "log" else self.pref_eval
            for k in CURVES:
                if k in extra:
                    target[k].append((d["step"], extra[k]))
        elif e.kind == "data":
            self.before = d.get("heldout_accuracy_before")
            # DPO's rewards are β·log(π/π_ref) summed over the answer; ORPO's β·log π per token (no reference)
            self.pref_fig.layout.annotations[0].text = t(f"rewards_{d.get('method', 'dpo')}")
        elif e.kind == "preference":
            self.before, self.after = d["before"], d["after"]
        super().__call__(e)

    @property
    def pref_points(self) -> dict[str, int]:
        """How many points each preference curve shows now (tests read this)."""
        return {k: len(tr.x or ()) for k, tr in zip(("chosen", "rejected", "margins", "acc", "acc_eval"),
                                                    self.pref_fig.data)}

    def _redraw(self) -> None:
        super()._redraw()
        series = [self.pref_pts[k] for k in CURVES] + [self.pref_eval["rewards/accuracies"]]
        counts = tuple(len(s) for s in series)
        if counts != getattr(self, "_pref_drawn", None):
            with self.pref_fig.batch_update():
                for tr, pts in zip(self.pref_fig.data, series):
                    tr.x = [p[0] for p in pts]
                    tr.y = [p[1] for p in pts]
            self._pref_drawn = counts
        if self.before:
            self.source_html.value = CSS + f"<div class='puyu'>{source_table(self.before, self.after)}</div>"


def source_table(before: dict, after: dict | None = None) -> str:
    """Held-out preference accuracy per source, before (the start model) and after the run."""
    head = f"<th>{esc(t('source'))}</th><th>n</th><th>{esc(t('before'))}</th>"
    if after:
        head += f"<th>{esc(t('after'))}</th><th>Δ</th>"
    rows = []
    for src in [s for s in before if s != "all"] + ["all"]:
        b = before[src]
        cells = f"<td>{esc(t(src))}</td><td>{b['n']}</td><td>{b['accuracy']:.1%}</td>"
        if after and src in after:
            a = after[src]
            delta = a["accuracy"] - b["accuracy"]
            cls = "ok" if delta > 0 else ("bad" if delta < 0 else "dim")
            cells += f"<td><b>{a['accuracy']:.1%}</b></td><td class='{cls}'>{delta:+.1%}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return (f"<h4>{esc(t('pref_accuracy'))}</h4><table class='puyu-table'><tr>{head}</tr>{''.join(rows)}</table>"
            f"<div class='dim'>{esc(t('pref_accuracy_note'))}</div>")


def _last_user(prompt: list[dict]) -> str:
    return next((m["content"] for m in reversed(prompt) if m["role"] == "user"), prompt[-1]["content"])


def inspect_pairs(rows: list[dict], source: str | None = None, limit: int = 12, only_changed: bool = False) -> HTMLView:
    """The pair inspector: held-out pairs (``heldout_scores.jsonl`` rows) with log p(chosen) and
    log p(rejected) before → after, and whether the model ranks chosen first."""
    sel = [r for r in rows if source in (None, r["source"])]
    if only_changed:
        sel = [r for r in sel if r["before"]["correct"] != r["after"]["correct"]]
    body = []
    for r in sel[:limit]:
        b, a = r["before"], r["after"]

        def mark(s):
            return "<span class='ok'>✓</span>" if s["correct"] else "<span class='bad'>✗</span>"

        body.append(
            f"<tr><td>{esc(t(r['source']))}</td><td>{esc(_last_user(r['prompt'])[:80])}</td>"
            f"<td><pre style='white-space:pre-wrap;margin:0'>{esc(r['chosen'][0]['content'][:120])}</pre></td>"
            f"<td><pre style='white-space:pre-wrap;margin:0'>{esc(r['rejected'][0]['content'][:120])}</pre></td>"
            f"<td>{b['logp_chosen']:.1f} / {b['logp_rejected']:.1f} {mark(b)}</td>"
            f"<td>{a['logp_chosen']:.1f} / {a['logp_rejected']:.1f} {mark(a)}</td></tr>")
    head = "".join(f"<th>{esc(t(k))}</th>" for k in ("source", "prompt", "chosen", "rejected", "before", "after"))
    html_body = (f"<h4>{esc(t('pair_inspector'))}</h4><div class='dim'>{esc(t('pair_inspector_note'))}</div>"
                 f"<table class='puyu-table'><tr>{head}</tr>{''.join(body)}</table>"
                 f"<div class='dim'>{len(sel[:limit])} / {len(sel)}</div>")
    text = "\n".join(f"{r['source']:<9} {_last_user(r['prompt'])[:40]!r}: {r['before']['margin']:+.2f} → "
                     f"{r['after']['margin']:+.2f}" for r in sel[:limit])
    return HTMLView(html_body, text)
