"""``puyu-lab agent …``: the held-out tasks (arithmetic, dates, no tool needed) with the tools vs
directly → ``agent/eval``."""
from __future__ import annotations

import argparse

from ..stagecli import Verb, add_stage, opt, stage_config, wrote


def _config(args: argparse.Namespace):
    from ..errors import InputError
    from .config import AgentConfig
    from .protocols import PROTOCOLS

    if args.protocol is not None and args.protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {args.protocol!r}; choose one of: {', '.join(PROTOCOLS)}",
                         zh=f"没有协议 {args.protocol!r}；可选：{', '.join(PROTOCOLS)}")
    return stage_config(args, AgentConfig, "model", "n_tasks", "kinds", "protocol", "max_turns", "max_new_tokens",
                        "levels")


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
    return wrote(res.artifact)


def add_agent_commands(sub) -> None:
    add_stage(sub, "agent", "Lagent / AgentLego stage: the agent on held-out tasks, with tools vs without",
              Verb("run", cmd_run, "run the agent on the held-out tasks → agent/eval", (
                  opt("--model", help="the model artifact (default model/sft)"),
                  opt("--n-tasks", type=int, help="held-out tasks per kind (default: the profile's)"),
                  opt("--kinds", nargs="*", help="task kinds: arithmetic date notool (default: all)"),
                  opt("--protocol", help="internlm2 (default), react or openai"),
                  opt("--max-turns", type=int),
                  opt("--max-new-tokens", type=int),
                  opt("--levels", nargs="*", help="GGUF levels to run as agents too (default Q4_K_M; none with an "
                                                  "empty list)"))))
