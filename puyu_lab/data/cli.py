"""``puyu-lab data …`` verbs: clean a corpus, export the recipe as a datatrove pipeline."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _recipe(args):
    from ..workspace import Workspace
    from .filters import Recipe

    if args.recipe:
        return Recipe.from_dict(json.loads(Path(args.recipe).read_text(encoding="utf-8-sig")))
    ws = Workspace(args.home)
    if ws.exists("corpus/clean"):
        return Recipe.from_dict(json.loads(ws.get("corpus/clean").file("recipe.json").read_text(encoding="utf-8")))
    return Recipe()


def cmd_clean(args: argparse.Namespace) -> int:
    from ..profiles import get_profile
    from ..workspace import Workspace
    from .pipeline import prepare
    from .sources import SKIP_HINT

    prof = get_profile(args.profile)
    limit = args.limit if args.limit is not None else prof.data.max_docs_per_source
    recipe = _recipe(args) if args.recipe else None
    token = SKIP_HINT.set("rerun with --skip-bad to skip such records and count them")  # the advice a CLI user can follow
    try:
        run = prepare(args.sources, limit_per_source=limit, seed=prof.data.seed, recipe=recipe,
                      skip_bad=args.skip_bad)
    finally:
        SKIP_HINT.reset(token)
    if run.skipped:
        from .sources import LoadReport

        print(LoadReport(run.skipped).summary())
    v = run.verdict()
    print(v.funnel.to_string(index=False))
    art = run.export(Workspace(args.home))
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

    c = dsub.add_parser("clean", help="load sources, apply the recipe, write corpus/clean")
    c.add_argument("--sources", nargs="+", default=["news-zh", "reviews-zh", "docs-en"],
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
