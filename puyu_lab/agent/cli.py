"""``puyu-lab agent …``: the held-out arithmetic tasks with the calculator vs directly → ``agent/eval``."""
from __future__ import annotations

import argparse


def _config(args: argparse.Namespace):
    from ..errors import InputError
    from ..profiles import get_profile, overrides
    from .config import AgentConfig
    from .protocols import PROTOCOLS

    if args.protocol is not None and args.protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {args.protocol!r}; choose one of: {', '.join(PROTOCOLS)}")

    changes = overrides(args, "model", "n_tasks", "protocol", "max_turns", "max_new_tokens", "levels")
    return AgentConfig.for_profile(get_profile(args.profile), **changes)


def cmd_run(args: argparse.Namespace) -> int:
    from ..workspace import Workspace
    from .entry import run

    res = run(Workspace(args.home), _config(args))
    m = res.metrics
    line = f"with the calculator {m['with_tools']:.0%}"
    if "direct" in m:
        line += f", directly {m['direct']:.0%}"
    print(f"{line}, called the calculator {m['called_calculator']:.0%} ({m['tasks']} tasks)")
    for lv, g in res.levels.items():
        print(f"{lv}: with the calculator {g['with_tools']:.0%}")
    print(f"wrote {res.artifact.name}")
    return 0


def add_agent_commands(sub) -> None:
    p = sub.add_parser("agent", help="Lagent / AgentLego stage: the agent on held-out arithmetic, with tools vs without")
    ps = p.add_subparsers(dest="agent_cmd", required=True)
    r = ps.add_parser("run", help="run the agent on the held-out tasks → agent/eval")
    r.add_argument("--profile", default=None)
    r.add_argument("--model", default=None, help="the model artifact (default model/sft)")
    r.add_argument("--n-tasks", type=int, default=None, help="held-out tasks (default: the profile's)")
    r.add_argument("--protocol", default=None, help="internlm2 (default), react or openai")
    r.add_argument("--max-turns", type=int, default=None)
    r.add_argument("--max-new-tokens", type=int, default=None)
    r.add_argument("--levels", nargs="*", default=None,
                   help="GGUF levels to run as agents too (default Q4_K_M; none with an empty list)")
    r.add_argument("--home", default=None)
    r.set_defaults(fn=cmd_run)
