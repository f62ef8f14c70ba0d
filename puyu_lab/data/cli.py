"""``puyu-lab data …`` verbs: clean a corpus, export the recipe as a datatrove pipeline."""
from __future__ import annotations

import argparse
import json

from ..stagecli import Verb, add_stage, opt, stage_config, wrote


def _recipe(args):
    from ..workspace import Workspace
    from .entry import load_recipe
    from .filters import Recipe

    if args.recipe:
        return load_recipe(args.recipe)
    ws = Workspace(args.home)
    if ws.exists("corpus/clean"):
        return Recipe.from_dict(json.loads(ws.get("corpus/clean").file("recipe.json").read_text(encoding="utf-8")))
    return Recipe()


def cmd_clean(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .config import DataConfig
    from .entry import run
    from .sources import SKIP_HINT

    cfg = stage_config(args, DataConfig, "sources", "recipe", "skip_bad", "limit_per_source")
    token = SKIP_HINT.set("rerun with --skip-bad to skip such records and count them")  # the advice a CLI user can follow
    try:
        res = run(Workspace(args.home), cfg)
    finally:
        SKIP_HINT.reset(token)
    if res.run.skipped:
        from .sources import LoadReport

        print(LoadReport(res.run.skipped).summary())
    print(res.run.verdict().funnel.to_string(index=False))
    art = res.artifact
    if art.metrics.get("split_note"):
        print(f"note: {art.metrics['split_note']}")
    return wrote(art, metrics=True)


def cmd_export_datatrove(args: argparse.Namespace) -> int:
    from .export import write_datatrove_script

    path = write_datatrove_script(_recipe(args), args.out)
    print(f"wrote {path} — run it with: python {path} --input DIR_OF_JSONL --out OUT_DIR")
    return 0


def add_data_commands(sub) -> None:
    from .config import SOURCES

    clean = (opt("--sources", nargs="+", default=list(SOURCES),
                 help="built-in names, local files/folders, or hf:<dataset>"),
             opt("--limit", dest="limit_per_source", metavar="LIMIT", type=int,
                 help="documents per source (default: the profile's)"),
             opt("--recipe", help="a recipe.json (default: the built-in defaults)"),
             opt("--skip-bad", action="store_true",
                 help="skip bad records (malformed lines, empty or oversized texts) instead of stopping; "
                      "they are counted in corpus/clean's manifest"))
    # `run` and `clean` are the same: every stage has `run`, `clean` is this stage's own word for it
    add_stage(sub, "data", "书生·万卷 data stage: clean a corpus, export a datatrove pipeline",
              *(Verb(verb, cmd_clean, "load sources, apply the recipe, write corpus/clean", clean)
                for verb in ("run", "clean")),
              Verb("export-datatrove", cmd_export_datatrove, "write the recipe as a datatrove pipeline script", (
                  opt("--out", default="datatrove_pipeline.py"),
                  opt("--recipe", help="a recipe.json (default: corpus/clean's, else the defaults)")), profile=False))
