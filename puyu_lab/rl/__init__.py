"""RL stage (GRPO, reinforcement learning from checkable rewards): the assistant learns to use its tools by
trying. The policy is the shipped course assistant (or the learner's model/sft). trl's GRPOTrainer samples groups of
one-turn completions for the tasks of ``sft/data``'s training conversations, asked in the stage's own phrasings, scores them with checkable rewards (the real calculator and date tool run on each call) or with a
naive one (any call pays: reward hacking, shown), and writes ``model/rl`` / ``model/rl-naive``.

Engines only (no widgets): ``config`` (``RLConfig``, sized per profile), ``rewards`` (the reward functions, trl's
signature), ``tasks`` (the prompts), ``groups`` (a few groups sampled and scored outside training), ``train`` (the trl run), ``figures`` (the figures recomputed from the saved
completions), ``entry`` (``run``), ``cli`` (``puyu-lab rl …``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

_EXPORTS = {"RLConfig": "config", "run": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # editors and type checkers see the names (go to definition); at run time they load lazily
    from .config import RLConfig
    from .entry import run
