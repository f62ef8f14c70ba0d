"""``puyu-lab preference …``: build the pairs, check a pair file, train with DPO or ORPO."""
from __future__ import annotations

from dataclasses import replace


def _config(args):
    from ..profiles import get_profile, overrides
    from .config import PrefConfig

    changes = overrides(args, "method", "tuning", "beta", "learning_rate", "max_steps")
    if getattr(args, "custom", None):
        changes["custom_pairs"] = args.custom
    if "max_steps" in changes:  # a fixed number of steps: no time budget
        changes["budget_s"] = None
    if getattr(args, "budget", None) is not None:
        changes["budget_s"] = args.budget or None
    return replace(PrefConfig.for_profile(get_profile(args.profile, check=args.cmd_name == "run")), **changes)


def cmd_pairs(args) -> int:
    from ..workspace import Workspace
    from .mixture import prepare_pairs

    args.cmd_name = "pairs"
    art = prepare_pairs(Workspace(args.home), _config(args))
    print(f"wrote {art.name}: {art.metrics}")
    return 0


def cmd_check(args) -> int:
    """Every bad line of a pair file with its reason (exit 1 when there is one)."""
    from .pairs import load_custom_pairs

    good, bad = load_custom_pairs(args.file)
    for b in bad:
        print(f"{args.file}:{b}")
    print(f"{len(good)} valid pair(s), {len(bad)} bad")
    return 1 if bad else 0


def cmd_run(args) -> int:
    from ..workspace import Workspace
    from .entry import run

    args.cmd_name = "run"
    res = run(Workspace(args.home), _config(args))
    m = res.metrics
    print(f"{m['method']} ({m['tuning']}) {'stopped' if res.stopped else 'finished'} at step {res.steps}/{res.max_steps}"
          f" in {m['seconds']} s")
    for src, a in m["by_source"].items():
        b = m["by_source_before"][src]
        print(f"  {src:<10} n={a['n']:<4} held-out preference accuracy {b['accuracy']:.1%} → {a['accuracy']:.1%}")
    print(f"wrote {res.artifact.name}")
    return 0


def add_preference_commands(sub) -> None:
    p = sub.add_parser("preference", help="XTuner DPO stage: preference pairs, DPO / ORPO with trl → model/dpo")
    ps = p.add_subparsers(dest="preference_cmd", required=True)
    for name, fn, hlp in (("pairs", cmd_pairs, "build pref/data from sft/data and corpus/clean"),
                          ("run", cmd_run, "the whole stage: pref/data, then DPO / ORPO → model/<method>")):
        c = ps.add_parser(name, help=hlp)
        c.add_argument("--profile", default=None)
        c.add_argument("--custom", default=None, help="your own pairs: JSONL with prompt / chosen / rejected")
        c.add_argument("--home", default=None)
        c.set_defaults(fn=fn)
        if name == "run":
            c.add_argument("--method", choices=("dpo", "orpo"), default=None)
            c.add_argument("--tuning", choices=("full", "lora"), default=None)
            c.add_argument("--beta", type=float, default=None)
            c.add_argument("--learning-rate", type=float, default=None)
            c.add_argument("--max-steps", type=int, default=None, help="exactly this many steps (no time budget)")
            c.add_argument("--budget", type=float, default=None, help="seconds of training (0: the recipe's steps)")
    ck = ps.add_parser("check", help="validate a pair file: every bad line with its reason")
    ck.add_argument("file")
    ck.set_defaults(fn=cmd_check)
