"""``puyu-lab course …``: build the course model (resumable), ship it into the package, show it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..stagecli import Verb, add_stage, opt

DEFAULT_HOME = "course-build"  # under the current directory: a workspace of its own, never the learner's


def _print_event(ev) -> None:
    if ev.kind in ("probe", "start", "done") or ev.kind == "eval":
        print(f"[{ev.stage}] {ev.kind} {json.dumps(ev.data, ensure_ascii=False, default=str)[:300]}", flush=True)


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build
    from .config import CourseConfig

    cfg = CourseConfig()
    if args.steps:
        cfg = cfg.scaled(args.steps)
    build(args.home, cfg, on_event=_print_event, until=args.until)
    print(f"course build: {args.home} is complete{' up to ' + args.until if args.until else ''}")
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
                  opt("--until", help="stop after this phase (a, b) or 'sft'")), profile=False, home=False),
              Verb("ship", cmd_ship, "copy the built base, assistant and tokenizer into the package (bf16, sha256)", (
                  opt("--home", default=DEFAULT_HOME),
                  opt("--to", help="another folder than the package's course_model/")), profile=False, home=False),
              Verb("status", cmd_status, "the shipped course model's manifest", profile=False, home=False))
