"""RAGPanel — retrieval curves (hit@k per retriever), the refusal threshold's slider over the
precision / recall curve, and a per-question drill-down (which chunk each retriever found, which
was right, and the answers with and without retrieval, the source span highlighted).

The slider's counts come from :func:`puyu_lab.rag.evaluate.refusal_at` — the engine's own function
on the engine's per-question relevance scores — so what the learner reads is the engine's figure.
"""
from __future__ import annotations


import ipywidgets as W
import plotly.graph_objects as go

from ..i18n import t
from ..rag.evaluate import KS, refusal_at, retrieval_table
from .base import CSS, PALETTE, esc, html_table

MODES = ("sparse", "dense", "hybrid")


def hitk_figure(metrics: dict) -> go.Figure:
    fig = go.Figure()
    for i, m in enumerate(MODES):
        fig.add_scatter(x=list(KS), y=[metrics.get(f"{m}_hit@{k}") for k in KS], mode="lines+markers", name=m,
                        line=dict(color=PALETTE[i]))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=36, b=30), title=t("rag_hitk"),
                      xaxis=dict(title="k", dtick=1), yaxis=dict(title="hit@k", range=[0, 1.02]))
    return fig


def _mark(text: str, start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return esc(text)
    return esc(text[:start]) + "<mark>" + esc(text[start:end]) + "</mark>" + esc(text[end:])


class RAGPanel:
    def __init__(self, rows: list[dict], metrics: dict, curve: list[dict], chunks: dict[str, str]):
        self.rows, self.metrics, self.curve, self.chunks = rows, metrics, curve, chunks
        self.test = [r for r in rows if r["split"] == "test"]
        self.scores = [r["relevance"] for r in self.test]
        self.answerable = [bool(r["answerable"]) for r in self.test]
        self.summary = W.HTML()
        self.hitk_out = W.Output()
        with self.hitk_out:
            go.Figure(hitk_figure(metrics)).show()
        # the refusal curve: precision and recall of answering as the threshold moves (live: a FigureWidget)
        xs = [c["threshold"] for c in curve]
        self.pr = go.FigureWidget()
        self.pr.add_scatter(x=xs, y=[c["precision"] for c in curve], mode="lines", name=t("precision"),
                            line=dict(color=PALETTE[0], shape="hv"))
        self.pr.add_scatter(x=xs, y=[c["recall"] for c in curve], mode="lines", name=t("recall"),
                            line=dict(color=PALETTE[1], shape="hv"))
        thr = float(metrics.get("threshold", xs[0] if xs else 0.0))
        self.pr.update_layout(height=300, margin=dict(l=10, r=10, t=36, b=30), title=t("rag_refusal_curve"),
                              xaxis=dict(title=t("relevance_threshold")), yaxis=dict(range=[0, 1.05]),
                              shapes=[dict(type="line", x0=thr, x1=thr, y0=0, y1=1.05, line=dict(dash="dot"))])
        lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
        self.slider = W.FloatSlider(value=thr, min=round(lo - 0.5, 2), max=round(hi + 0.5, 2), step=0.05,
                                    description=t("threshold"), continuous_update=True, readout_format=".2f",
                                    layout=W.Layout(width="480px"))
        self.counts = W.HTML()
        self.slider.observe(lambda ch: self._draw_counts(), names="value")
        labels = [f"{r['id']} {'✓' if r['answerable'] else '∅'} {r['question'][:28]}" for r in self.test]
        self.pick = W.Dropdown(options=list(zip(labels, range(len(self.test)))), value=0 if self.test else None,
                               description=t("question"), layout=W.Layout(width="560px"))
        self.detail = W.HTML()
        self.pick.observe(lambda ch: self._draw_detail(), names="value")
        self.ui = W.VBox([W.HTML(CSS + f"<div class='puyu'><h4>{esc(t('rag_panel'))}</h4></div>"), self.summary,
                          self.hitk_out, W.HTML(f"<div class='puyu'><h4>{esc(t('rag_refusal'))}</h4></div>"),
                          self.slider, self.counts, self.pr,
                          W.HTML(f"<div class='puyu'><h4>{esc(t('rag_drilldown'))}</h4></div>"), self.pick,
                          self.detail])
        self._draw_summary()
        self._draw_counts()
        self._draw_detail()

    @classmethod
    def from_result(cls, res) -> "RAGPanel":
        """The panel over an engine run (:class:`puyu_lab.rag.entry.RAGResult`)."""
        return cls(res.rows, res.metrics, res.curve, {c["id"]: c["text"] for c in res.retriever.chunks})

    @classmethod
    def from_workspace(cls, ws) -> "RAGPanel":
        from ..artifacts import load_rag_eval, load_rag_index

        ev, ix = load_rag_eval(ws), load_rag_index(ws)
        return cls(ev["rows"], ev["metrics"], ev["curve"], {c["id"]: c["text"] for c in ix["chunks"]})

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)

    # ---- what the panel shows (tests read these) ----
    def stats(self) -> dict:
        """The refusal figures at the slider's threshold (the engine's :func:`refusal_at`)."""
        return refusal_at(self.scores, self.answerable, self.slider.value)

    def table(self) -> list[dict]:
        return retrieval_table(self.metrics, MODES)

    # ---- drawing ----
    def _draw_summary(self) -> None:
        m = self.metrics
        rows = [{k: (f"{v:.1%}" if k.startswith("hit") else f"{v:.3f}" if isinstance(v, float) else v)
                 for k, v in r.items()} for r in self.table()]
        read = (f"<div>{esc(t('rag_answers'))}: <b>{m.get('answer_rag', 0):.0%}</b> {esc(t('with_retrieval'))} · "
                f"{m.get('answer_rag_free', 0):.0%} {esc(t('free_form'))} · {m.get('answer_none', 0):.0%} "
                f"{esc(t('without_retrieval'))} ({m.get('answered_questions', 0)})</div>")
        self.summary.value = (CSS + "<div class='puyu'>" + html_table(rows, ["mode", "hit@1", "hit@3", "hit@5", "hit@10", "mrr"])
                              + f"<div class='dim'>{m.get('chunks', 0)} chunks · fusion α = {m.get('alpha')} · "
                              f"{m.get('test_answerable', 0)} + {m.get('test_unanswerable', 0)} test questions</div>"
                              + read + "</div>")

    def _draw_counts(self) -> None:
        s = self.stats()
        self.counts.value = (
            CSS + f"<div class='puyu puyu-refusal' data-answered='{s['answered']}' data-refused='{s['refused']}' "
            f"data-precision='{s['precision']:.4f}' data-recall='{s['recall']:.4f}'>"
            f"{esc(t('answered'))} <b>{s['answered']}</b> ({s['answered_answerable']} {esc(t('answerable'))}, "
            f"{s['answered_unanswerable']} {esc(t('unanswerable'))}) · {esc(t('refused'))} <b>{s['refused']}</b> "
            f"({s['refused_unanswerable']} {esc(t('unanswerable'))}) · {esc(t('precision'))} "
            f"<b>{s['precision']:.0%}</b> · {esc(t('recall'))} <b>{s['recall']:.0%}</b></div>")
        with self.pr.batch_update():
            self.pr.layout.shapes[0].x0 = self.pr.layout.shapes[0].x1 = self.slider.value

    def _draw_detail(self) -> None:
        if self.pick.value is None:
            self.detail.value = ""
            return
        r = self.test[self.pick.value]
        gold = r.get("chunk")
        parts = [f"<div><b>{esc(r['question'])}</b> → <code>{esc(r['answer'])}</code> · relevance "
                 f"{r['relevance']:.2f} ({esc(t('answered') if r['relevance'] >= self.slider.value else t('refused'))})</div>"]
        if gold:
            parts.append(f"<div class='dim'>{esc(t('gold_chunk'))} {esc(gold)}: "
                         f"{_mark(self.chunks.get(gold, ''), *self._span(self.chunks.get(gold, ''), r))}</div>")
        else:
            parts.append(f"<div class='dim'>{esc(t('not_in_index'))}</div>")
        rows = []
        for m in MODES:
            top = r["top"][m]
            rank = r["ranks"][m]
            rows.append({"mode": m, "rank": rank if rank else "—",
                         "top": " · ".join(("✓ " if c == gold else "") + self.chunks.get(c, "")[:24] for c in top)})
        parts.append(html_table(rows, ["mode", "rank", "top"]))
        if r.get("read"):
            rd = r["read"]
            src = rd["rag"].get("source")
            ps = r.get("passages", [])
            if src and src["passage"] < len(ps):
                text = self.chunks.get(ps[src["passage"]], "")
                parts.append(f"<div>{esc(t('with_retrieval'))}: <b>{esc(rd['rag']['reply'])}</b> "
                             f"{'✓' if rd['rag']['correct'] else '✗'}<br><span class='dim'>{esc(t('source'))} "
                             f"{esc(ps[src['passage']])}:</span> {_mark(text, src['start'], src['end'])}</div>")
            parts.append(f"<div>{esc(t('free_form'))}: {esc(rd['rag_free']['reply'])} {'✓' if rd['rag_free']['correct'] else '✗'}"
                         f"<br>{esc(t('without_retrieval'))}: {esc(rd['none']['reply'])} {'✓' if rd['none']['correct'] else '✗'}</div>")
        self.detail.value = CSS + "<div class='puyu'>" + "".join(parts) + "</div>"

    @staticmethod
    def _span(text: str, r: dict) -> tuple[int | None, int | None]:
        i = text.find(r["left"] + r["answer"])
        return (i + len(r["left"]), i + len(r["left"]) + len(r["answer"])) if i >= 0 else (None, None)
