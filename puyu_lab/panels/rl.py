"""RLPanel — the training panel plus GRPO's own view: the mean reward per step with the spread within groups (the
band: GRPO's advantages are each completion's distance from its group's mean, so a group with no spread teaches
nothing), the KL to the reference, the share of correct answers and of no-tool questions answered with a call; and
the latest step's groups, each sampled completion with its total and per-function rewards, best first.

A view: everything drawn comes from the engine's events (``data``, ``rl``, and the trainer's ``log`` … that
:class:`TrainingPanel` draws).
"""
from __future__ import annotations

import re

import ipywidgets as W
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..events import Event
from ..i18n import t, tr
from .base import CSS, PALETTE, esc
from .pretrain import TrainingPanel

SERIES = ("reward", "group_std", "kl", "correct", "notool_called")
LIMIT = 400  # characters of a completion shown; the rest is counted
_MARKER = re.compile(r"&lt;\|[a-z_]+\|&gt;")  # a protocol marker once escaped: <|action_start|>, <|im_end|> …


def _kind(k: str) -> str:
    return {"arithmetic": tr("算术", "arithmetic"), "date": tr("日期", "date"),
            "notool": tr("无需工具", "no tool needed")}.get(k, k)


def completion_html(text: str, limit: int = LIMIT) -> str:
    """A completion escaped, its protocol markers kept visible and set apart, cut at ``limit`` characters."""
    more = len(text) - limit
    cut = f"<span class='dim'> … {esc(tr(f'（另有 {more} 字符）', f'(+{more} chars)'))}</span>" if more > 0 else ""
    body = _MARKER.sub(lambda m: f"<span style='color:#9334e6'>{m.group(0)}</span>", esc(text[:limit]))
    return f"<pre style='white-space:pre-wrap;margin:0;max-width:640px'>{body}{cut}</pre>"


def group_table(g: dict) -> str:
    """One prompt's group: question, kind, gold answer; its completions, best first, with their rewards."""
    samples = sorted(g["samples"], key=lambda s: s["reward"], reverse=True)
    fns = list(dict.fromkeys(k for s in samples for k in s["rewards"]))
    rewards = [s["reward"] for s in samples]
    flat = len(set(rewards)) <= 1
    head = (f"<th>#</th><th>{esc(tr('采样的回答', 'sampled completion'))}</th>"
            f"<th>{esc(tr('总奖励', 'reward'))}</th>" + "".join(f"<th><code>{esc(f)}</code></th>" for f in fns))
    rows = []
    for i, s in enumerate(samples, 1):
        cls = "dim" if flat else ("ok" if s["reward"] == rewards[0] else ("bad" if s["reward"] == rewards[-1] else ""))
        cells = "".join(f"<td>{s['rewards'][f]:+.2f}</td>" if f in s["rewards"] else "<td>—</td>" for f in fns)
        rows.append(f"<tr><td>{i}</td><td>{completion_html(s['completion'])}</td>"
                    f"<td class='{cls}'>{s['reward']:+.2f}</td>{cells}</tr>")
    gold = esc(g.get("gold") or "—")
    note = tr("组内奖励全部相同：优势全为 0，这一组不提供学习信号。",
              "all rewards in the group are equal: every advantage is 0, the group teaches nothing.")
    note = f"<div class='warn'>{esc(note)}</div>" if flat and len(samples) > 1 else ""
    return (f"<div><b>{esc(t('question'))}</b>: {esc(g['question'])} · "
            f"<span class='dim'>{esc(_kind(g['kind']))}</span> · {esc(tr('标准答案', 'gold'))}: <code>{gold}</code>"
            f"</div>{note}"
            f"<table class='puyu-table'><tr>{head}</tr>{''.join(rows)}</table>")


class RLPanel(TrainingPanel):
    def __init__(self, title: str = "trl · GRPO"):
        self.rl_pts: dict[str, list[tuple[int, float]]] = {k: [] for k in SERIES}
        self.groups: list[dict] = []  # the latest step's groups only
        self.groups_step: int | None = None
        self.rl_last: dict = {}
        self.data_info: dict | None = None
        super().__init__(title)

    def _build(self) -> None:
        super()._build()
        titles = (tr("平均奖励 ± 组内标准差", "mean reward ± within-group std"),
                  tr("与参考模型的 KL", "KL to the reference"), tr("答对率 · 无需工具却调用", "correct · no-tool questions called"))
        fig = self.rl_fig = go.FigureWidget(make_subplots(rows=1, cols=3, column_widths=[0.44, 0.28, 0.28],
                                                          subplot_titles=titles))
        band = dict(mode="lines", line=dict(width=0, color=PALETTE[0]), row=1, col=1)
        fig.add_scatter(x=[], y=[], showlegend=False, hoverinfo="skip", **band)
        fig.add_scatter(x=[], y=[], fill="tonexty", fillcolor="rgba(31,58,147,0.15)",
                        name=tr("组内标准差", "within-group std"), **band)
        fig.add_scatter(x=[], y=[], mode="lines+markers", name=tr("平均奖励", "mean reward"),
                        line=dict(color=PALETTE[0]), row=1, col=1)
        fig.add_scatter(x=[], y=[], mode="lines+markers", name="KL", line=dict(color=PALETTE[1]), row=1, col=2)
        fig.add_scatter(x=[], y=[], mode="lines+markers", name=tr("答对率", "correct"), line=dict(color=PALETTE[2]),
                        row=1, col=3)
        fig.add_scatter(x=[], y=[], mode="lines+markers", name=tr("无需工具却调用", "no-tool called"),
                        line=dict(color=PALETTE[3]), row=1, col=3)
        fig.update_layout(height=300, margin=dict(l=10, r=10, t=36, b=30), legend=dict(orientation="h", y=-0.2))
        fig.update_yaxes(range=[0, 1.02], row=1, col=3)
        fig.update_xaxes(title_text=t("step"))
        self.rl_stats, self.groups_html = W.HTML(), W.HTML()
        self.ui.children = (*self.ui.children[:3], self.rl_stats, self.rl_fig, self.groups_html, self.fig)

    def __call__(self, e: Event) -> None:
        d = e.data
        if e.kind == "data":
            self.data_info = d
        elif e.kind == "rl":
            for k in SERIES:
                if d.get(k) is not None:
                    self.rl_pts[k].append((d["step"], d[k]))
            self.groups, self.groups_step = list(d.get("groups") or []), d["step"]
            self.rl_last = d
            self.max_steps = d.get("max_steps") or self.max_steps
        super().__call__(e)

    @property
    def rl_points(self) -> dict[str, int]:
        """How many points each GRPO curve shows now (tests read this)."""
        return {k: len(self.rl_fig.data[i].x or ()) for k, i in (("band", 1), ("reward", 2), ("kl", 3),
                                                                  ("correct", 4), ("notool_called", 5))}

    def _redraw(self) -> None:
        super()._redraw()
        P = self.rl_pts
        counts = tuple(len(v) for v in P.values())
        if counts != getattr(self, "_rl_drawn", None):
            std = dict(P["group_std"])
            both = [(s, r, std[s]) for s, r in P["reward"] if s in std]
            series = [[(s, r - g) for s, r, g in both], [(s, r + g) for s, r, g in both],
                      P["reward"], P["kl"], P["correct"], P["notool_called"]]
            with self.rl_fig.batch_update():
                for trace, pts in zip(self.rl_fig.data, series):
                    trace.x, trace.y = [p[0] for p in pts], [p[1] for p in pts]
                if P["reward"] and not P["kl"]:
                    self.rl_fig.layout.annotations[1].text = tr("KL（β=0：不计算）", "KL (β=0: not computed)")
            self._rl_drawn = counts
        parts = []
        if self.data_info:
            d = self.data_info
            rw = (tr("可核验奖励", "checked reward") if d.get("reward") == "checked"
                  else tr("朴素奖励（只看是否调用）", "naive reward (any call)"))
            parts.append(f"<b>{esc(rw)}</b> · {d.get('prompts', 0)} {esc(tr('道题', 'prompts'))}: "
                         + " · ".join(f"{esc(_kind(k))} {d.get(k, 0)}" for k in ("arithmetic", "date", "notool")))
        L = self.rl_last
        if L:
            zero = (L.get("extra") or {}).get("frac_reward_zero_std")
            fmt = [(tr("平均奖励", "mean reward"), L.get("reward"), "{:+.3f}"),
                   (tr("组内标准差", "within-group std"), L.get("group_std"), "{:.3f}"),
                   (tr("无差异组占比", "groups with no spread"), zero, "{:.0%}"),
                   (tr("答对率", "correct"), L.get("correct"), "{:.0%}"),
                   (tr("无需工具却调用", "no-tool called"), L.get("notool_called"), "{:.0%}"),
                   ("KL", L.get("kl"), "{:.4f}"), (tr("平均长度", "mean length"), L.get("mean_length"), "{:.0f}")]
            parts.append(" · ".join(f"{esc(name)} <b>{f.format(v)}</b>" for name, v, f in fmt if v is not None))
        self.rl_stats.value = f"<div class='puyu'>{'<br>'.join(parts)}</div>"
        if self.groups:
            n = self.groups_step
            title = tr(f"第 {n} 步的分组采样（按奖励从高到低）", f"step {n}: each group's samples, best first")
            self.groups_html.value = (CSS + f"<div class='puyu'><h4>{esc(title)}</h4>"
                                      + "".join(group_table(g) for g in self.groups) + "</div>")
