"""Copying from the context (``models/probes.py``): the learner's quick model beside the shipped course model.

The quick recipe (400 steps at batch × context 8 × 256, 0.8 M tokens) is far short of the tokens induction heads
need (N ≈ 10^5.7·√(B·C), Aoyama, Wilcox & Schneider 2025); the course model was trained past them by
``puyu-lab course build``. Each row: 16 random runs of 32 vocabulary pieces shown twice; the mean negative
log-likelihood per token at the first and second showing, the gain, and the share of runs whose second showing
greedy decoding reproduces exactly; then the tokens each model saw against the threshold its B·C predicts.
"""
from __future__ import annotations

import tempfile
from pathlib import Path


def main() -> str:
    from puyu_lab.models import HFModel
    from puyu_lab.models import course
    from puyu_lab.models.probes import copy_probe, induction_threshold
    from puyu_lab.workspace import Workspace
    from common import tiny_base

    rows = []
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(Path(d) / "ws")
        cfg = tiny_base(ws, 400)
        quick = HFModel.load(ws.get("model/base").path, name="quick base")
        bc = cfg.batch_size * cfg.preset.block_size
        rows.append(("learner's quick base (400 steps)", copy_probe(quick), 400 * bc, bc))
    try:
        build = course.shipped_manifest()["build"]
    except course.CourseModelMissing as e:  # not built and shipped yet: the learner's row alone, and why
        build, missing = None, str(e)
    if build:
        b = build["phases"][0]["batch_x_context"] if build["phases"] else None
        for part in course.PARTS:
            rows.append((f"course {part}", copy_probe(course.load(part)), build["tokens_seen"], b))
    out = [f"{'model':34} {'first':>7} {'second':>7} {'gain':>6} {'copied':>7} {'tokens seen':>12} "
           f"{'threshold':>10}"]
    for name, r, tokens, bc in rows:
        thr = f"{induction_threshold(bc) / 1e6:.1f} M" if bc else "—"
        out.append(f"{name:34} {r['first_nll']:7.2f} {r['second_nll']:7.2f} {r['gain']:6.2f} {r['copied']:7.0%} "
                   f"{tokens / 1e6:10.1f} M {thr:>10}")
    out.append("(nats per token; threshold: 10^5.7·√(B·C) tokens at the B·C the model trained (its first phase))")
    if not build:
        out.append(f"course model: {missing}")
    return "\n".join(out)
