"""The data stage in one call: load the sources, clean them with the recipe, write ``corpus/clean``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..events import Event, StopFlag
from ..workspace import Artifact, Workspace
from .config import DataConfig


@dataclass
class DataResult:
    run: object  # the pipeline.CleaningRun (signals, dedup, verdict, examples)
    artifact: Artifact  # corpus/clean


def load_recipe(path):
    """A recipe.json as a :class:`~puyu_lab.data.filters.Recipe`."""
    import json
    from pathlib import Path

    from .filters import Recipe

    return Recipe.from_dict(json.loads(Path(path).read_text(encoding="utf-8-sig")))


def run(ws: Workspace, cfg: DataConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
        stop: StopFlag | None = None) -> DataResult:
    """``prepare`` the sources of ``cfg`` (default: the profile's) and export ``corpus/clean``."""
    from .pipeline import prepare

    ws = ws.for_stage("data")  # reads only what stages.py declares for the stage
    cfg = cfg or DataConfig.for_profile()
    cleaning = prepare(list(cfg.sources), limit_per_source=cfg.limit_per_source, seed=cfg.seed,
                       recipe=load_recipe(cfg.recipe) if cfg.recipe else None, on_event=on_event, stop=stop,
                       show_progress=cfg.show_progress, skip_bad=cfg.skip_bad)
    return DataResult(cleaning, cleaning.export(ws, on_event=on_event))
