"""What the labs' checks share: reading an artifact's evidence files, and whether a homework artifact still measures
the chain artifacts it was made from.

Each lab's module under :mod:`puyu_lab.checks.labs` says *what* it verifies; the reading and the lineage rule are
written once, here, so that every lab reads a file and judges a stale homework artifact the same way.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import Msg
from ..workspace import Artifact
from .core import Outcome, both_of, say

# the detail of a homework artifact made from an earlier version of a chain artifact ({name}: the homework
# artifact, {parent}: the chain artifact made again since)
MADE_AGAIN = say("{name} 是用较早的 {parent} 做的（{parent} 之后又重新生成过）：请重新运行它的作业单元格",
                 "{name} was made from an earlier {parent} (made again since): run its 作业 cell again")


def read_json(art: Artifact, fname: str) -> Any:
    """The JSON file ``fname`` of artifact ``art``."""
    return json.loads(art.file(fname).read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file (blank lines skipped)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def eval_losses(art: Artifact) -> list[float]:
    """The held-out losses of a training run's curve (``curve.json``), in order."""
    return [r["eval_loss"] for r in read_json(art, "curve.json") if "eval_loss" in r]


def made_from(ctx, name: str, *parents: str, detail: str = MADE_AGAIN) -> str:
    """Why ``name`` no longer measures the current ``parents`` ("" when it does): one of them was made again since
    (its id is not the one ``name``'s manifest records). ``detail`` is the message (a :func:`say` text, both
    languages formatted), with ``{name}`` and ``{parent}``."""
    ids = {p.get("name"): p.get("id") for p in ctx.get(name).parents}
    for parent in parents:
        if ids.get(parent) != ctx.get(parent).id:
            en, zh = both_of(detail)
            return Msg(en.format(name=name, parent=parent), zh.format(name=name, parent=parent))
    return ""


def stale(ctx, name: str, parents: tuple[str, ...], figure: str, detail: str = MADE_AGAIN) -> Outcome | None:
    """The failed :class:`Outcome` (``figure``, and :func:`made_from`'s reason as its detail) when ``name`` was made
    from an earlier version of one of ``parents``; ``None`` when it measures the current ones."""
    why = made_from(ctx, name, *parents, detail=detail)
    return Outcome(False, figure, detail=why) if why else None


def unequal_steps(runs: list[dict], each: str) -> Outcome | None:
    """The failed :class:`Outcome` when the runs of a sweep did not all train for the same number of steps (> 0), so
    that they compare only the setting swept (``each``: what one run is, "rank", "β"); ``None`` when they did."""
    steps = {int(r["steps"]) for r in runs}
    if len(steps) != 1 or min(steps) < 1:
        en, zh = both_of(each)
        return Outcome(False, say(f"步数 {sorted(steps)}", f"steps {sorted(steps)}"),
                       detail=say(f"每个{zh}都要训练同样的步数（> 0）", f"give every {en} the same number of steps (> 0)"))
    return None
