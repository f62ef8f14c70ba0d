"""What the two stages that tune the learner's assistant (fine-tune, preference) share without importing each
other: a run's result, and the error a learner's own data file without one valid line raises."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Sequence

from ..errors import InputError, LineProblem
from ..workspace import Artifact


@dataclass
class TrainResult:
    """A tuning run: the steps it made of the ones it planned, whether a stop ended it, its logged history, its
    metrics, the artifact it wrote (None when it saved nothing) and the trained model."""

    steps: int
    max_steps: int
    stopped: bool
    history: list[dict]
    metrics: dict
    artifact: Artifact | None
    model: object = None


def raise_no_valid_line(path: str | Path, bad: Sequence[LineProblem], *, what: str, what_zh: str,
                        unit_zh: str) -> NoReturn:
    """Raise the :class:`InputError` for a custom file none of whose lines is valid: how many lines were bad and
    the first five of them, in both languages. ``what`` is the English for one valid line (``record``, ``pair``),
    ``what_zh`` the Chinese saying there is none, ``unit_zh`` the counter word for a bad line (``条``, ``行``)."""
    detail = "; ".join(b.en for b in bad[:5]) + (f"; … {len(bad) - 5} more" if len(bad) > 5 else "")
    detail_zh = "；".join(b.zh for b in bad[:5]) + (f"；…… 另有 {len(bad) - 5} {unit_zh}" if len(bad) > 5 else "")
    raise InputError(f"{path}: no valid {what} ({len(bad)} bad: {detail or 'the file is empty'})",
                     zh=f"{path}：{what_zh}（{len(bad)} {unit_zh}有问题：{detail_zh or '文件是空的'}）")
