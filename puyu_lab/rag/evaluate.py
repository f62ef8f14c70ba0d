"""Retrieval and refusal figures: hit@k and MRR per mode (as BEIR / LlamaIndex's RetrieverEvaluator
define them: the gold chunk within the first k; the mean of 1/rank, 0 when not found), and the
precision / recall of answering as a relevance threshold moves.

The refusal curve is computed here once; the panel's slider reads :func:`refusal_at` — the same
function — so what the learner sees at a threshold is the engine's figure.
"""
from __future__ import annotations

import numpy as np

KS = tuple(range(1, 11))


def rank_of(hits: list[tuple[int, float]], gold: int) -> int | None:
    """1-based rank of ``gold`` among ``hits`` (None: not retrieved)."""
    for r, (i, _) in enumerate(hits, 1):
        if i == gold:
            return r
    return None


def retrieval_metrics(ranks: list[int | None], ks=KS) -> dict:
    n = max(1, len(ranks))
    return {"hit@k": {k: sum(r is not None and r <= k for r in ranks) / n for k in ks},
            "mrr": sum(1.0 / r for r in ranks if r) / n, "n": len(ranks)}


def retrieval_table(metrics: dict, modes=("sparse", "dense", "hybrid")) -> list[dict]:
    """One row per retriever from a run's metrics: hit@1/3/5/10 and MRR."""
    return [{"mode": m, **{f"hit@{k}": metrics[f"{m}_hit@{k}"] for k in (1, 3, 5, 10)}, "mrr": metrics[f"{m}_mrr"]}
            for m in modes]


def refusal_at(scores, answerable, threshold: float) -> dict:
    """Answer when the relevance ``score`` ≥ ``threshold``, refuse below it. Positives are the
    answerable questions: precision = answered ∧ answerable / answered, recall = answered ∧
    answerable / answerable; ``refused_unanswerable`` is the share of unanswerable ones refused."""
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(answerable, dtype=bool)
    ans = s >= threshold
    tp = int((ans & a).sum())
    n_ans = int(ans.sum())
    return {"threshold": float(threshold), "answered": n_ans, "refused": int((~ans).sum()),
            "answered_answerable": tp, "answered_unanswerable": n_ans - tp,
            "refused_unanswerable": int((~ans & ~a).sum()), "refused_answerable": int((~ans & a).sum()),
            "precision": tp / n_ans if n_ans else 1.0, "recall": tp / int(a.sum()) if a.any() else 0.0}


def refusal_curve(scores, answerable) -> list[dict]:
    """:func:`refusal_at` at every distinct score (each a threshold where a count changes), low to high."""
    return [refusal_at(scores, answerable, t) for t in sorted(set(float(x) for x in scores))]


def choose_threshold(scores, answerable) -> dict:
    """The threshold with the best F1 of answering (ties: the higher threshold, refusing more)."""
    best = None
    for r in refusal_curve(scores, answerable):
        p, q = r["precision"], r["recall"]
        f1 = 2 * p * q / (p + q) if p + q else 0.0
        if best is None or f1 >= best[0]:
            best = (f1, r)
    return {**best[1], "f1": best[0]} if best else {}


def auc(scores, answerable) -> float:
    """Probability that an answerable question scores above an unanswerable one (ROC AUC, ties ½)."""
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(answerable, dtype=bool)
    pos, neg = s[a], s[~a]
    if not len(pos) or not len(neg):
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(gt / (len(pos) * len(neg)))
