"""``puyu-lab data …`` verbs: clean a corpus, export the recipe as a datatrove pipeline."""
from __future__ import annotations

import argparse
import json


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
    from ..profiles import get_profile
    from ..workspace import Workspace
    from .config import DataConfig
    from .entry import run
    from .sources import SKIP_HINT

    changes = {"sources": args.sources, "recipe": args.recipe, "skip_bad": args.skip_bad}
    if args.limit is not None:
        changes["limit_per_source"] = args.limit
    cfg = DataConfig.for_profile(get_profile(args.profile), **changes)
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
    print(f"wrote {art.name}: {art.metrics}")
    return 0


def cmd_export_datatrove(args: argparse.Namespace) -> int:
    from .export import write_datatrove_script

    path = write_datatrove_script(_recipe(args), args.out)
    print(f"wrote {path} — run it with: python {path} --input DIR_OF_JSONL --out OUT_DIR")
    return 0


def add_data_commands(sub) -> None:
    data = sub.add_parser("data", help="书生·万卷 data stage: clean a corpus, export a datatrove pipeline")
    dsub = data.add_subparsers(dest="data_cmd", required=True)

    from .config import SOURCES

    for verb in ("run", "clean"):  # the same: every stage has `run`, `clean` is this stage's own word for it
        c = dsub.add_parser(verb, help="load sources, apply the recipe, write corpus/clean")
        c.add_argument("--sources", nargs="+", default=list(SOURCES),
                       help="built-in names, local files/folders, or hf:<dataset>")
        c.add_argument("--profile", default=None)
        c.add_argument("--limit", type=int, default=None, help="documents per source (default: the profile's)")
        c.add_argument("--recipe", default=None, help="a recipe.json (default: the built-in defaults)")
        c.add_argument("--skip-bad", action="store_true",
                       help="skip bad records (malformed lines, empty or oversized texts) instead of stopping; "
                            "they are counted in corpus/clean's manifest")
        c.add_argument("--home", default=None)
        c.set_defaults(fn=cmd_clean)

    e = dsub.add_parser("export-datatrove", help="write the recipe as a datatrove pipeline script")
    e.add_argument("--out", default="datatrove_pipeline.py")
    e.add_argument("--recipe", default=None, help="a recipe.json (default: corpus/clean's, else the defaults)")
    e.add_argument("--home", default=None)
    e.set_defaults(fn=cmd_export_datatrove)
