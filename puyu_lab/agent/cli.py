"""``puyu-lab agent …``: the held-out tasks (arithmetic, dates, no tool needed) with the tools vs
directly → ``agent/eval``."""
from __future__ import annotations

import argparse


def _config(args: argparse.Namespace):
    from ..errors import InputError
    from ..profiles import get_profile, overrides
    from .config import AgentConfig
    from .protocols import PROTOCOLS

    if args.protocol is not None and args.protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {args.protocol!r}; choose one of: {', '.join(PROTOCOLS)}")

    changes = overrides(args, "model", "n_tasks", "kinds", "protocol", "max_turns", "max_new_tokens", "levels")
    return AgentConfig.for_profile(get_profile(args.profile), **changes)


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .entry import run

    res = run(Workspace(args.home), _config(args))
    rows = res.table()
    cols = [c for c in rows[0] if c not in ("task", "tasks")]
    print(f"{'task':<12}{'n':>5}" + "".join(f"{c:>13}" for c in cols))
    for r in rows:
        print(f"{r['task']:<12}{r['tasks']:>5}" + "".join(f"{'–' if r[c] is None else format(r[c], '.0%'):>13}"
                                                       for c in cols))
    print(f"wrote {res.artifact.name}")
    return 0


def add_agent_commands(sub) -> None:
    p = sub.add_parser("agent", help="Lagent / AgentLego stage: the agent on held-out tasks, with tools vs without")
    ps = p.add_subparsers(dest="agent_cmd", required=True)
    r = ps.add_parser("run", help="run the agent on the held-out tasks → agent/eval")
    r.add_argument("--profile", default=None)
    r.add_argument("--model", default=None, help="the model artifact (default model/sft)")
    r.add_argument("--n-tasks", type=int, default=None, help="held-out tasks per kind (default: the profile's)")
    r.add_argument("--kinds", nargs="*", default=None, help="task kinds: arithmetic date notool (default: all)")
    r.add_argument("--protocol", default=None, help="internlm2 (default), react or openai")
    r.add_argument("--max-turns", type=int, default=None)
    r.add_argument("--max-new-tokens", type=int, default=None)
    r.add_argument("--levels", nargs="*", default=None,
                   help="GGUF levels to run as agents too (default Q4_K_M; none with an empty list)")
    r.add_argument("--home", default=None)
    r.set_defaults(fn=cmd_run)
