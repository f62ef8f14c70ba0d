"""Preference stage (XTuner DPO / ORPO): preference pairs from the learner's own chain (identity,
sentiment, tool use, custom files), trl's DPOTrainer / ORPOTrainer on ``model/sft``, held-out preference
accuracy per source before and after.

Engines only (no widgets): ``config`` (``PrefConfig``, sized per profile), ``pairs`` (the sources and
custom-file checks), ``mixture`` (``pref/data``), ``scoring`` (trl's tokenization, held-out scores),
``train`` (the trl run), ``entry`` (``run``), ``cli`` (``puyu-lab preference …``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

_EXPORTS = {"PrefConfig": "config", "run": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # editors and type checkers see the names (go to definition); at run time they load lazily
    from .config import PrefConfig
    from .entry import run
