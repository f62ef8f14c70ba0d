"""``puyu-lab course …``: build the course model (resumable), ship it into the package, show it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..stagecli import Verb, add_stage, opt

DEFAULT_HOME = "course-build"  # under the current directory: a workspace of its own, never the learner's
DEFAULT_SEED = "course-seed"  # beside it: the finished phases a session commits (`course seed`), another continues


def _print_event(ev) -> None:
    if ev.kind in ("probe", "start", "done") or ev.kind == "eval":
        print(f"[{ev.stage}] {ev.kind} {json.dumps(ev.data, ensure_ascii=False, default=str)[:300]}", flush=True)


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build
    from .config import CourseConfig
    from .seed import SEED_FILE

    cfg = CourseConfig()
    if args.steps:
        cfg = cfg.scaled(args.steps)
    seed = None if args.no_seed else (args.seed or (DEFAULT_SEED if Path(DEFAULT_SEED, SEED_FILE).is_file() else None))
    build(args.home, cfg, on_event=_print_event, until=args.until, seed=seed)
    print(f"course build: {args.home} is complete{' up to ' + args.until if args.until else ''}")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .seed import export

    seed = export(Workspace(Path(args.home)), args.out)
    print(f"seed written to {args.out}: phases {', '.join(p['phase'] for p in seed['phases'])} finished "
          f"(weights of {seed['weights']}), the build goes on with {seed['next']}")
    return 0


def cmd_ship(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .ship import ship

    out = ship(Workspace(Path(args.home)), Path(args.to) if args.to else None)
    print(f"shipped the course model to {out}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .ship import shipped_manifest

    print(json.dumps(shipped_manifest(), indent=1, ensure_ascii=False))
    return 0


def add_course_commands(sub) -> None:
    # the course's own workspace (--home: ./course-build), no profile: its recipe is fixed
    add_stage(sub, "course", "the course model: build it with the chain's own stages, ship it, show it",
              Verb("build", cmd_build, "build (or continue building) the course model in its own workspace", (
                  opt("--home", default=DEFAULT_HOME, help=f"the build's workspace (default: ./{DEFAULT_HOME})"),
                  opt("--steps", type=int, help="cut every phase to this many steps (a smoke run)"),
                  opt("--until", help="stop after this phase (a, b) or 'sft'"),
                  opt("--seed", help=f"a seed folder to start a new --home from (default: ./{DEFAULT_SEED} when it "
                                     "exists)"),
                  opt("--no-seed", action="store_true", help="start from scratch even when a seed exists")),
                  profile=False, home=False),
              Verb("seed", cmd_seed, "write the build's finished phases as a seed folder another machine continues "
                   "from (tokenizer, the latest phase's weights, every phase's record)", (
                  opt("--home", default=DEFAULT_HOME),
                  opt("--out", default=DEFAULT_SEED, help=f"the seed folder (default: ./{DEFAULT_SEED})")),
                   profile=False, home=False),
              Verb("ship", cmd_ship, "copy the built base, assistant and tokenizer into the package (bf16, sha256)", (
                  opt("--home", default=DEFAULT_HOME),
                  opt("--to", help="another folder than the package's course_model/")), profile=False, home=False),
              Verb("status", cmd_status, "the shipped course model's manifest", profile=False, home=False))
