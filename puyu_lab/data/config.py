"""The data stage's config: which sources, how many documents of each, the recipe, sized per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..profiles import as_profile

SOURCES = ("news-zh", "reviews-zh", "docs-en")  # the built-in sources the data lab cleans


@dataclass
class DataConfig:
    sources: tuple[str, ...] = SOURCES  # built-in names, local files/folders, or hf:<dataset>
    limit_per_source: int | None = 4000  # documents taken from each source (None = all of it)
    seed: int = 0
    recipe: str | None = None  # a recipe.json (None: the built-in defaults)
    skip_bad: bool = False  # skip bad records of local files (counted in the manifest) instead of stopping
    show_progress: bool = True

    @classmethod
    def for_profile(cls, profile=None, **changes) -> "DataConfig":
        """The profile's sizes (a name, a :class:`~puyu_lab.profiles.Profile` or ``None`` for the
        default), with ``changes`` on top."""
        p = as_profile(profile)
        cfg = cls(limit_per_source=p.data.max_docs_per_source, seed=p.data.seed)
        if "sources" in changes:
            changes["sources"] = tuple(changes["sources"])
        return replace(cfg, **changes)
