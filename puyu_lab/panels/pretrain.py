"""TrainingPanel — live loss and learning-rate curves, tokens/s, ETA, grad norm, samples, Stop, Resume.

A listener of the training engine's events (``begin``, ``numerics`` (the precision chosen for this
machine, shown beside tokens/s), ``log``, ``eval``, ``sample``, ``checkpoint``,
``end``, ``done``). Training runs in a worker thread (:meth:`start`), so the Stop button's click
reaches the kernel while it runs; Stop ends training gracefully with a checkpoint, Resume continues
the same curve from it. :meth:`as_callback` attaches the panel to any HF ``Trainer``;
:meth:`replay` draws a finished run from its saved log history. Drawing is throttled to 5 Hz.
"""
from __future__ import annotations

import html
from typing import Any, Callable

import ipywidgets as W
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..events import Event, StopFlag
from ..i18n import t
from .base import CSS, PALETTE, Throttle, WorkerWait, esc, run_in_thread


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(s)
    return f"{s // 60}:{s % 60:02d}"


class TrainingPanel(WorkerWait):
    def __init__(self, title: str = "InternLM-Train · Pretrain"):
        self.title = title
        self.stop = StopFlag()
        self.train_pts: list[tuple[int, float]] = []
        self.eval_pts: list[tuple[int, float]] = []
        self.lr_pts: list[tuple[int, float]] = []
        self.samples: list[tuple[int, dict[str, str]]] = []
        self.warnings: list[str] = []
        self.last: dict[str, Any] = {}
        self.max_steps = 0
        self.thread = None
        self.result = None
        self.error: BaseException | None = None
        self._resume_fn: Callable | None = None
        self._draw = Throttle(self._redraw)
        self._build()

    # ---- widgets ---------------------------------------------------------------------------
    def _build(self) -> None:
        self.fig = go.FigureWidget(make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38],
                                                 subplot_titles=(t("loss"), t("learning_rate"))))
        self.fig.add_scatter(x=[], y=[], mode="lines", name=t("train_loss"), line=dict(color=PALETTE[0]), row=1, col=1)
        self.fig.add_scatter(x=[], y=[], mode="lines+markers", name=t("eval_loss"), line=dict(color=PALETTE[1]),
                             row=1, col=1)
        self.fig.add_scatter(x=[], y=[], mode="lines", name=t("learning_rate"), line=dict(color=PALETTE[2]),
                             row=1, col=2, showlegend=False)
        self.fig.update_layout(height=320, margin=dict(l=10, r=10, t=36, b=30), legend=dict(orientation="h", y=-0.18))
        self.fig.update_xaxes(title_text=t("step"))
        self.progress = W.IntProgress(min=0, max=1, value=0, layout=W.Layout(width="420px"))
        self.stats = W.HTML()
        self.status = W.HTML()
        self.stop_btn = W.Button(description=t("stop"), button_style="danger", icon="stop", disabled=True)
        self.stop_btn.on_click(lambda _: self.request_stop())
        self.resume_btn = W.Button(description=t("resume"), button_style="success", icon="play", disabled=True)
        self.resume_btn.on_click(lambda _: self.resume())
        self.samples_html = W.HTML()
        self.ui = W.VBox([
            W.HTML(CSS + f"<div class='puyu'><h4>{esc(self.title)}</h4></div>"),
            W.HBox([self.progress, self.stop_btn, self.resume_btn, self.status]),
            self.stats, self.fig, W.HTML(f"<div class='puyu'><h4>{esc(t('samples_gen'))}</h4></div>"), self.samples_html,
        ])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)

    # ---- events ----------------------------------------------------------------------------
    def __call__(self, e: Event) -> None:
        d = e.data
        if e.kind == "begin":
            self.max_steps = d["max_steps"]
            if d.get("history") and not self.train_pts:  # resumed in a fresh panel: draw the curve so far
                self._load_history(d["history"])
            self.status.value = f"<span class='puyu'>{t('training')} …</span>"
        elif e.kind == "numerics":
            self.last["numerics"] = d.get("summary") or d.get("dtype")
        elif e.kind == "budget":  # a time budget's plan: the steps it buys on this machine
            self.last["budget"] = d
            if d.get("step_s"):
                self.max_steps = d["total_steps"]
        elif e.kind == "log":
            self.train_pts.append((d["step"], d["loss"]))
            if d.get("learning_rate") is not None:
                self.lr_pts.append((d["step"], d["learning_rate"]))
            self.max_steps = d.get("max_steps", self.max_steps)
            self.last.update(d)
        elif e.kind == "eval":
            self.eval_pts.append((d["step"], d["eval_loss"]))
            self.last.update(eval_loss=d["eval_loss"], bits_per_byte=d.get("bits_per_byte"))
        elif e.kind == "sample":
            self.samples.append((d["step"], d["samples"]))
        elif e.kind == "warning":
            if d["message"] not in self.warnings:
                self.warnings.append(d["message"])
        elif e.kind == "checkpoint":
            self.last["checkpoint"] = d["path"]
        elif e.kind == "end":
            self.last["step"] = d["step"]
            word = t("stopped") if d.get("stopped") else t("finished")
            self.status.value = f"<span class='puyu warn'>{esc(word)} @ {d['step']}</span>"
        self._draw()

    def _load_history(self, history: list[dict]) -> None:
        for h in history:
            if "loss" in h and "step" in h:
                self.train_pts.append((h["step"], h["loss"]))
                if "learning_rate" in h:
                    self.lr_pts.append((h["step"], h["learning_rate"]))
            elif "eval_loss" in h:
                self.eval_pts.append((h["step"], h["eval_loss"]))

    @property
    def points(self) -> dict[str, int]:
        """How many points each curve shows now (tests read this)."""
        return {"train": len(self.fig.data[0].x or ()), "eval": len(self.fig.data[1].x or ()),
                "lr": len(self.fig.data[2].x or ())}

    def _redraw(self) -> None:
        counts = (len(self.train_pts), len(self.eval_pts), len(self.lr_pts))
        if counts != getattr(self, "_drawn", None):  # the curves only change when points arrive
            with self.fig.batch_update():
                for trace, pts in zip(self.fig.data, (self.train_pts, self.eval_pts, self.lr_pts)):
                    trace.x = [p[0] for p in pts]
                    trace.y = [p[1] for p in pts]
            self._drawn = counts
        L = self.last
        step = L.get("step", 0)
        self.progress.max = max(1, self.max_steps)
        self.progress.value = min(step, self.progress.max)
        parts = []
        if L.get("budget"):  # "budget 3:00 — 412 steps on this machine", re-planned as the run measures itself
            b = L["budget"]
            if b.get("step_s"):
                parts.append(f"{t('budget')} <b>{_fmt_s(b['budget_s'])}</b> — <b>{b['total_steps']}</b> "
                             f"{t('budget_steps')} ({b['step_s']:.2f} s/{t('step')})")
            else:
                parts.append(f"{t('budget')} <b>{_fmt_s(b['budget_s'])}</b> — {t('budget_probe')}")
        parts.append(f"{t('step')} <b>{step}</b>/{self.max_steps}")
        if L.get("loss") is not None:
            parts.append(f"{t('train_loss')} <b>{L['loss']:.3f}</b>")
        if L.get("eval_loss") is not None:
            bpb = f" · {L['bits_per_byte']:.3f} bits/byte" if L.get("bits_per_byte") else ""
            parts.append(f"{t('eval_loss')} <b>{L['eval_loss']:.3f}</b>{bpb}")
        if L.get("tokens_per_s"):
            parts.append(f"<b>{L['tokens_per_s']:,.0f}</b> tokens/s")
        parts.append(f"ETA {_fmt_s(L.get('eta_s'))}")
        if L.get("grad_norm") is not None:
            parts.append(f"grad norm {L['grad_norm']:.2f}")
        if L.get("numerics"):
            parts.append(f"{t('numerics')}: {esc(L['numerics'])}")
        warn = "".join(f"<div class='warn'>⚠ {esc(w)}</div>" for w in self.warnings)
        self.stats.value = "<span class='puyu'>" + " · ".join(parts) + "</span>" + (f"<div class='puyu'>{warn}</div>"
                                                                                     if warn else "")
        rows = []
        for st, smp in self.samples[-4:]:
            cells = "".join(f"<td><pre style='white-space:pre-wrap;margin:0'>{html.escape(v)}</pre></td>"
                            for v in smp.values())
            rows.append(f"<tr><td>{st}</td>{cells}</tr>")
        if self.samples:
            head = "".join(f"<th>{html.escape(p)}</th>" for p in self.samples[-1][1])
            self.samples_html.value = (f"<div class='puyu'><table class='puyu-table'><tr><th>{t('step')}</th>{head}</tr>"
                                       f"{''.join(rows)}</table></div>")

    def flush(self) -> None:
        self._draw.flush()

    # ---- control ---------------------------------------------------------------------------
    def start(self, fn: Callable[..., Any], resume_fn: Callable[..., Any] | None = None) -> "TrainingPanel":
        """Run ``fn(on_event=self, stop=self.stop)`` in a worker thread; ``resume_fn`` (same
        signature) is what the Resume button runs after a Stop."""
        self._resume_fn = resume_fn
        self._launch(fn)
        return self

    def _launch(self, fn) -> None:
        self.error = None
        self.stop.clear()
        self.stop_btn.disabled, self.resume_btn.disabled = False, True

        def done(result, error):
            self.result, self.error = result, error
            self.stop_btn.disabled = True
            self.resume_btn.disabled = self._resume_fn is None or error is not None or not getattr(result, "stopped", False)
            if error is not None:
                self.status.value = f"<span class='puyu bad'>{esc(type(error).__name__)}: {esc(error)}</span>"
            self.flush()

        self.thread = run_in_thread(lambda: fn(on_event=self, stop=self.stop), on_done=done, name="puyu-train")

    def request_stop(self) -> None:
        self.stop.set()
        self.stop_btn.disabled = True
        self.status.value = f"<span class='puyu warn'>{t('stopping')} …</span>"

    def resume(self) -> None:
        if self._resume_fn is None:
            from ..errors import UsageError

            raise UsageError("this panel has no resume function (pass resume_fn to start)",
                             zh="这个面板没有可以继续的训练：调用 start 时传入 resume_fn")
        self._launch(self._resume_fn)

    def as_callback(self, tokens_per_step: int = 0, stage: str = "pretrain"):
        """This panel as a TrainerCallback for any HF Trainer (Stop included); ``tokens_per_step``
        (batch × sequence length) gives the tokens/s readout."""
        from ..events import Emitter, trainer_callback

        return trainer_callback(Emitter(stage, self), tokens_per_step=tokens_per_step, stop=self.stop)

    @classmethod
    def replay(cls, history: list[dict] | str, title: str = "InternLM-Train · replay") -> "TrainingPanel":
        """Draw a finished run from its log history (a list, or a ``curve.json`` / ``trainer_state.json`` path)."""
        from ..events import history_summary, read_log_history

        history = read_log_history(history)
        panel = cls(title)
        panel._load_history(history)
        summary = history_summary(history)
        panel.max_steps = summary["step"]
        panel.last.update(summary)
        panel.status.value = f"<span class='puyu'>{t('replay')}</span>"
        panel._redraw()
        return panel
