"""Homework that checks itself: each lab's checks, the learner's report card, the evidence bundle and
the teacher's gradebook.

    core.py      Check / Outcome / Result / ReportCard, the registry, run()
    labs/        one module per lab: what its self-check verifies on the learner's own artifacts
    report.py    the report card as HTML (notebook fragment; an offline page under workspace/report/)
    bundle.py    ``puyu-lab submit``: manifests, metrics, small artifacts, hashes of the big ones, environment
    probes.py    hidden probes: a teacher's file of fresh questions, run against a bundled model
    grade.py     ``puyu-lab grade``: verify bundles, re-run the checks on them, run the probes, write a gradebook

A lab's self-check cell calls :func:`verify`; ``puyu-lab check [LAB]`` prints the same card.
"""
from __future__ import annotations

from .core import REGISTRY, Check, ChecksFailed, Outcome, ReportCard, Result, run, select

__all__ = ["REGISTRY", "Check", "ChecksFailed", "Outcome", "ReportCard", "Result", "homework", "run", "select",
           "verify"]


def merged(card: ReportCard, previous) -> ReportCard:
    """``card``'s results, plus those of other labs from an earlier ``checks.json`` (if any)."""
    import json
    from pathlib import Path

    p = Path(previous)
    if not p.is_file():
        return card
    try:
        old = ReportCard.from_dict(json.loads(p.read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        return card
    # a lab's self-checks replace its earlier self-checks, its homework its earlier homework
    new = {(r.lab, bool(r.homework)) for r in card.results}
    keep = [r for r in old.results if (r.lab, bool(r.homework)) not in new]
    return ReportCard(card.workspace, sorted(keep + card.results, key=lambda r: r.lab), card.created, card.seconds)


def _publish(card: ReportCard, ws, *, write: bool, display: bool) -> None:
    """Refresh ``workspace/report/`` (the card's results replace the same lab's earlier self-checks, or its
    earlier homework) and show the card in the notebook (text outside IPython)."""
    from .report import write_report

    if write:
        write_report(merged(card, ws.root / "report" / "checks.json"), ws.root / "report")
    if display:
        try:
            from IPython.display import HTML, display as show

            show(HTML(card._repr_html_()))
        except ImportError:
            print(card.text())


def verify(lab: str, ws=None, *, display: bool = True, write: bool = True) -> ReportCard:
    """A lab's self-check cell: run its checks on the learner's workspace, show the report card, refresh
    ``workspace/report/``, and raise :class:`ChecksFailed` naming each failed check and its hint (in the current
    language, as the card shows it)."""
    from ..workspace import Workspace

    ws = ws or Workspace()
    card = run(ws, lab)
    _publish(card, ws, write=write, display=display)
    if not card.ok:
        raise ChecksFailed("\n".join(f"✗ {r.id} ({r.figure_in()}): {r.hint_in()}" for r in card.failures))
    return card


def homework(lab: str, ws=None, *, display: bool = True, write: bool = True, enabled=None) -> ReportCard:
    """A lab's 作业 cell: run its homework tasks on the learner's workspace, show them as a card and add them to
    ``workspace/report/`` (what ``puyu-lab submit`` bundles). Homework is optional: this never raises for a task
    not done. ``enabled`` (check id → bool, a teacher's ``homework`` switches in the probe file) leaves out the
    tasks switched off."""
    from ..workspace import Workspace

    ws = ws or Workspace()
    on = None if enabled is None else (lambda c: enabled.get(c.id, True))
    card = run(ws, lab, homework=True, only=on)
    _publish(card, ws, write=write, display=display)
    return card
