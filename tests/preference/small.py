"""The preference stage at test size: the pair mixture's and the run's small sizes, and the tiny chain's workspace
with its pairs (the preference tests and the preference homework's share them)."""
from __future__ import annotations

from pathlib import Path

from puyu_lab.preference.config import PairSettings, PrefConfig

SMALL = PairSettings(sentiment=24, tool=16, heldout_sentiment=10, heldout_tool=6)


def small_cfg(**kw) -> PrefConfig:
    return PrefConfig(**{**dict(pairs=SMALL, batch_size=4, max_length=160, eval_every=2, log_every=1,
                                progress_bar=False, bf16=False), **kw})


def pairs_workspace(layers, dest: Path, cfg: PrefConfig | None = None):
    """The tiny chain up to model/sft (tests/conftest.py's ``layers``) copied to ``dest``, with pref/data built from
    ``cfg`` (default: :func:`small_cfg`) by the stage's own engine."""
    from puyu_lab.preference.mixture import prepare_pairs

    ws = layers.workspace("sft", dest)
    prepare_pairs(ws, cfg or small_cfg())
    return ws
