"""DataCleaningPanel — 书生·万卷 data cleaning, interactively.

A view over a :class:`puyu_lab.data.pipeline.CleaningRun`: the engine holds the signals, the
MinHash clusters and the recipe; the panel edits that recipe and draws what the engine says.
Signals are precomputed, so re-applying the recipe on a slider move takes milliseconds; drawing
is throttled to 5 Hz.
"""
from __future__ import annotations

import time

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..data.filters import GROUPS, RULES, RULES_BY_NAME, STAGES, Recipe, Verdict
from ..data.pipeline import CleaningRun
from ..i18n import t
from ..workspace import Workspace
from .base import CSS, PALETTE, Throttle, error_html, esc, run_in_thread


def _slider_range(values: np.ndarray, default: float | None) -> tuple[float, float, float]:
    """Slider bounds and a step that every default threshold is a multiple of (the browser
    snaps a slider's value to its step, which must not move a threshold by itself)."""
    v = values[np.isfinite(values)]
    hi = float(np.nanpercentile(v, 99.5)) if len(v) else 1.0
    hi = max(hi, (default or 0) * 2, 1e-6)
    if hi > 5:
        return 0.0, float(np.ceil(hi)), 1.0
    return 0.0, round(float(np.ceil(hi * 100) / 100), 2), 0.001


class DataCleaningPanel:
    """Toggles and sliders per rule, a live funnel, histograms, dropped samples, clusters, PII, export."""

    def __init__(self, run: CleaningRun, workspace: Workspace | None = None, *, recipe: Recipe | None = None):
        self.run = run
        self.ws = workspace
        self.error: BaseException | None = None  # what the last export raised
        self.export_thread = None
        if recipe is not None:
            run.recipe = recipe
        self.recipe = run.recipe  # the engine's recipe object: the panel edits it, never a copy
        self.verdict: Verdict = run.verdict(self.recipe)
        self.last_ms = 0.0
        self._draw = Throttle(self._redraw)
        self._build()
        self._redraw()

    @classmethod
    def from_sources(cls, sources, workspace: Workspace | None = None, *, skip_bad: bool = False,
                     recipe: Recipe | None = None, **prepare_kw) -> "DataCleaningPanel":
        """Load ``sources`` through the engine (:func:`puyu_lab.data.pipeline.prepare`) and show the
        run. ``skip_bad=True`` skips bad records of local files instead of refusing them; the panel
        shows how many, and the export counts them in the corpus manifest."""
        from ..data.pipeline import prepare

        return cls(prepare(sources, recipe=recipe, skip_bad=skip_bad, **prepare_kw), workspace)

    # ---- widgets -------------------------------------------------------------------------
    def _build(self) -> None:
        sig = self.run.signals
        self.lang = W.ToggleButtons(options=[("中文 zh", "zh"), ("English en", "en")], value="zh",
                                    description=t("threshold"))
        self.lang.observe(lambda _: self._sync_sliders(), names="value")
        self.group_boxes: dict[str, W.Checkbox] = {}
        self.rule_boxes: dict[str, W.Checkbox] = {}
        self.sliders: dict[str, W.FloatSlider] = {}
        sections = []
        for group in GROUPS:
            gb = W.Checkbox(value=self.recipe.groups.get(group, True), description=t(group), indent=False)
            gb.observe(self._on_group(group), names="value")
            self.group_boxes[group] = gb
            rows = [gb]
            if group == "language":
                self.lang_score = W.FloatSlider(value=self.recipe.min_lang_score, min=0, max=1, step=0.01,
                                                description=t("min_lang_score"), continuous_update=True,
                                                readout_format=".2f", style={"description_width": "initial"})
                self.lang_score.observe(self._on_lang_score, names="value")
                rows.append(self.lang_score)
            if group == "c4":
                for attr in ("c4_lorem_ipsum", "c4_curly_bracket"):
                    cb = W.Checkbox(value=getattr(self.recipe, attr), description=t(attr), indent=False)
                    cb.observe(self._on_flag(attr), names="value")
                    rows.append(cb)
            for rule in (r for r in RULES if r.group == group):
                lo, hi, step = _slider_range(sig[rule.signal].to_numpy(dtype=float), rule.en)
                s = W.FloatSlider(min=lo, max=hi, step=step, description=rule.name, continuous_update=True,
                                  style={"description_width": "190px"}, layout=W.Layout(width="430px"),
                                  readout_format=".3g", tooltip=rule.help)
                s.observe(self._on_slider(rule.name), names="value")
                cb = W.Checkbox(value=True, indent=False, layout=W.Layout(width="24px"), tooltip=rule.help)
                cb.observe(self._on_rule_box(rule.name), names="value")
                self.sliders[rule.name], self.rule_boxes[rule.name] = s, cb
                rows.append(W.HBox([cb, s]))
            sections.append(W.VBox(rows))
        self.rules_ui = W.Accordion(children=sections, titles=tuple(t(g) for g in GROUPS))
        self.dedup_boxes = {}
        for attr in ("pii", "exact_dedup", "near_dedup"):
            cb = W.Checkbox(value=getattr(self.recipe, attr), description=t("pii_scrub" if attr == "pii" else attr),
                            indent=False)
            cb.observe(self._on_flag(attr), names="value")
            self.dedup_boxes[attr] = cb
        self.focus = W.Dropdown(options=[(r.name, r.name) for r in RULES], value="top_2_gram",
                                description=t("signal"))
        self.focus.observe(lambda _: self._draw(), names="value")

        self.fig = go.FigureWidget(make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                                                 subplot_titles=(t("funnel"), t("histogram"))))
        stages = [t(s) for s in STAGES]
        self.fig.add_bar(y=stages, x=[0] * len(stages), orientation="h", name=t("documents"),
                         marker_color=PALETTE[0], row=1, col=1, text=[""] * len(stages), textposition="auto")
        self.fig.add_histogram(x=[], name=t("kept"), marker_color=PALETTE[2], opacity=0.75, nbinsx=60, row=1, col=2)
        self.fig.add_histogram(x=[], name=t("dropped"), marker_color=PALETTE[3], opacity=0.6, nbinsx=60, row=1, col=2)
        self.fig.update_layout(height=400, margin=dict(l=10, r=10, t=40, b=40), barmode="overlay",
                               legend=dict(orientation="h", y=-0.25), bargap=0.05)
        self.fig.update_yaxes(autorange="reversed", row=1, col=1)
        self.fig.update_xaxes(title_text=f"{t('documents')} · % {t('characters')}", row=1, col=1)

        self.status = W.HTML()
        self.reason_pick = W.Dropdown(description=t("reason"), options=[])
        self.reason_pick.observe(lambda _: self._draw_samples(), names="value")
        self.samples = W.HTML()
        self.clusters = W.HTML()
        self.pii_view = W.HTML()
        self.export_btn = W.Button(description=f"{t('export')} corpus/clean", button_style="primary",
                                   icon="download", disabled=self.ws is None)
        self.export_btn.on_click(self._on_export)
        self.export_status = W.HTML()
        self._sync_sliders()

        controls = W.VBox([self.lang, self.rules_ui, W.HBox(list(self.dedup_boxes.values()))],
                          layout=W.Layout(width="470px"))
        right = W.VBox([self.focus, self.fig, self.status])
        tabs = W.Tab(children=[W.VBox([self.reason_pick, self.samples]), self.clusters, self.pii_view],
                     titles=(t("samples"), t("clusters"), t("pii")))
        self.ui = W.VBox([W.HTML(CSS + f"<div class='puyu'><h4>书生·万卷 {esc(t('funnel'))}</h4></div>"),
                          W.HBox([controls, right]), tabs, W.HBox([self.export_btn, self.export_status])])
        self._draw_clusters()
        self._draw_pii()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)

    # ---- events --------------------------------------------------------------------------
    def _sync_sliders(self) -> None:
        lang = self.lang.value
        self._syncing = True
        try:
            for name, s in self.sliders.items():
                v = self.recipe.threshold(name, lang)
                self.rule_boxes[name].value = v is not None
                s.disabled = v is None
                if v is not None:
                    s.max = max(s.max, v)
                    s.value = v
        finally:
            self._syncing = False

    def _on_slider(self, name: str):
        def handler(change):
            if getattr(self, "_syncing", False):
                return
            current = self.recipe.threshold(name, self.lang.value)
            if current is not None and abs(float(change["new"]) - current) < self.sliders[name].step / 2:
                return  # the browser echoing the value back (float rounding), not a move
            self.recipe.set(name, float(change["new"]), self.lang.value)
            self.focus.value = name
            self.apply()
        return handler

    def _on_rule_box(self, name: str):
        def handler(change):
            if getattr(self, "_syncing", False):
                return
            on = bool(change["new"])
            self.sliders[name].disabled = not on
            self.recipe.set(name, float(self.sliders[name].value) if on else None, self.lang.value)
            self.apply()
        return handler

    def _on_group(self, group: str):
        def handler(change):
            self.recipe.groups[group] = bool(change["new"])
            self.apply()
        return handler

    def _on_flag(self, attr: str):
        def handler(change):
            setattr(self.recipe, attr, bool(change["new"]))
            self.apply()
        return handler

    def _on_lang_score(self, change):
        self.recipe.min_lang_score = float(change["new"])
        self.apply()

    def set_threshold(self, rule: str, value: float | None, lang: str | None = None) -> None:
        """Move a rule's slider (what a learner does with the mouse), for scripts and tests."""
        if lang:
            self.lang.value = lang
        if value is None:
            self.rule_boxes[rule].value = False
        else:
            self.rule_boxes[rule].value = True
            s = self.sliders[rule]
            s.max = max(s.max, value)
            s.value = value

    def apply(self) -> Verdict:
        """Re-apply the recipe (milliseconds) and schedule a redraw (throttled)."""
        t0 = time.perf_counter()
        self.verdict = self.run.verdict(self.recipe)
        self.last_ms = (time.perf_counter() - t0) * 1000
        self._draw()
        return self.verdict

    def flush(self) -> None:
        self._draw.flush()

    # ---- drawing -------------------------------------------------------------------------
    @property
    def funnel(self) -> list[tuple[str, int]]:
        """What the funnel chart shows now: (stage label, documents)."""
        bar = self.fig.data[0]
        return list(zip(bar.y, [int(x) for x in bar.x]))

    def _redraw(self) -> None:
        v = self.verdict
        f = v.funnel
        raw_docs, raw_chars = int(f.documents.iloc[0]), int(f.characters.iloc[0])
        rule = RULES_BY_NAME[self.focus.value]
        lang = self.lang.value
        sig = self.run.signals
        sel = (sig["rule_lang"] == lang).to_numpy()
        vals = sig[rule.signal].to_numpy(dtype=float)
        dropped_by_rule = v.reason == rule.name
        thr = self.recipe.threshold(rule.name, lang)
        with self.fig.batch_update():
            bar = self.fig.data[0]
            bar.x = f.documents.tolist()
            bar.text = [f"{d:,} · {c / max(raw_chars, 1):.0%}" for d, c in zip(f.documents, f.characters)]
            self.fig.data[1].x = vals[sel & ~dropped_by_rule]
            self.fig.data[2].x = vals[sel & dropped_by_rule]
            self.fig.layout.shapes = () if thr is None else (dict(
                type="line", xref="x2", yref="paper", x0=thr, x1=thr, y0=0, y1=1, line=dict(color="black", dash="dash")),)
            self.fig.layout.annotations[1].text = f"{t('histogram')}: {rule.signal} ({lang})"
        self.status.value = (f"<span class='puyu'>{t('kept')}: <b>{v.n_kept:,}</b> / {raw_docs:,} {t('documents')}"
                             f" · {int(f.characters.iloc[-1]):,} / {raw_chars:,} {t('characters')}"
                             f" · {self.last_ms:.1f} ms"
                             + (f" · {len(self.run.skipped):,} {t('skipped_bad')}"
                                if self.run.skipped else "") + "</span>")
        reasons = v.reasons()
        opts = [(f"{r} ({n:,})", r) for r, n in reasons.items()]
        if opts != list(self.reason_pick.options):
            cur = self.reason_pick.value
            self.reason_pick.options = opts
            self.reason_pick.value = cur if cur in reasons.index else (opts[0][1] if opts else None)
        self._draw_samples()

    def _draw_samples(self) -> None:
        reason = self.reason_pick.value
        if not reason:
            self.samples.value = ""
            return
        ex = self.run.examples(reason, k=3, verdict=self.verdict)
        rows = "".join(f"<tr><td>{esc(r.id)}</td><td><pre style='white-space:pre-wrap;max-height:9em;overflow:auto'>"
                       f"{esc(r.text[:600])}</pre></td></tr>" for r in ex.itertuples())
        self.samples.value = f"<div class='puyu'><table class='puyu-table'>{rows}</table></div>"

    def _draw_clusters(self) -> None:
        pairs = self.run.near_duplicate_pairs(k=5)
        if not pairs:
            self.clusters.value = f"<i>{esc(t('no_clusters'))}</i>"
            return
        rows = "".join(
            f"<tr><td>#{p['cluster']} ({p['size']})<br>{t('est_jaccard')} {p['estimated_jaccard']:.2f}<br>"
            f"{t('true_jaccard')} {p['true_jaccard']:.2f}</td>"
            f"<td><pre style='white-space:pre-wrap'>{esc(p['text_a'][:300])}</pre></td>"
            f"<td><pre style='white-space:pre-wrap'>{esc(p['text_b'][:300])}</pre></td></tr>" for p in pairs)
        self.clusters.value = f"<div class='puyu'><table class='puyu-table'>{rows}</table></div>"

    def _draw_pii(self) -> None:
        totals, examples = self.run.pii_examples()
        rows = [f"<tr><td><pre style='white-space:pre-wrap'>{esc(before)}</pre></td>"
                f"<td><pre style='white-space:pre-wrap'>{esc(after)}</pre></td></tr>" for before, after in examples]
        head = ", ".join(f"{k}: {n}" for k, n in totals.items())
        self.pii_view.value = (f"<div class='puyu'><p>{esc(head)}</p><table class='puyu-table'>"
                               f"<tr><th>{t('pii_before')}</th><th>{t('pii_after')}</th></tr>{''.join(rows)}</table></div>")

    def _on_export(self, _=None) -> None:
        self.export_btn.disabled = True
        self.export_status.value = "…"
        self.error = None

        def done(art, err):
            self.error = err  # kept: what the export raised
            self.export_btn.disabled = False
            self.export_status.value = (f"<span class='puyu ok'>{t('exported')} {art.name}: {art.metrics['documents']:,} "
                                        f"{t('documents')}</span>" if err is None else error_html(err))

        self.export_thread = run_in_thread(lambda: self.run.export(self.ws, self.recipe), on_done=done,
                                           name="puyu-export")
