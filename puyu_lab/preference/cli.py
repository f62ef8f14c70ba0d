"""``puyu-lab preference …``: build the pairs, check a pair file, train with DPO or ORPO."""
from __future__ import annotations

from ..stagecli import RUN_LENGTH, Verb, add_stage, check_file, ended, opt, stage_config, wrote


def _config(args, *, check: bool):
    """The PrefConfig of the profile; ``check``: the verb trains (the profile's hardware is checked now)."""
    from .config import PrefConfig

    return stage_config(args, PrefConfig, "method", "tuning", "beta", "learning_rate", "custom_pairs", check=check)


def cmd_pairs(args) -> int:
    from ..workspace import Workspace
    from .mixture import prepare_pairs

    return wrote(prepare_pairs(Workspace(args.home), _config(args, check=False)), metrics=True)


def cmd_check(args) -> int:
    """Every bad line of a pair file with its reason (exit 1 when there is one)."""
    from .pairs import load_custom_pairs

    return check_file(args.file, load_custom_pairs, "pair")


def cmd_run(args) -> int:
    from ..workspace import Workspace
    from .entry import run

    res = run(Workspace(args.home), _config(args, check=True))
    m = res.metrics
    print(f"{m['method']} ({m['tuning']}) {ended(res)} in {m['seconds']} s")
    for src, a in m["by_source"].items():
        b = m["by_source_before"][src]
        print(f"  {src:<10} n={a['n']:<4} held-out preference accuracy {b['accuracy']:.1%} → {a['accuracy']:.1%}")
    return wrote(res.artifact)


CUSTOM = opt("--custom", dest="custom_pairs", metavar="CUSTOM",
             help="your own pairs: JSONL with prompt / chosen / rejected")


def add_preference_commands(sub) -> None:
    add_stage(sub, "preference", "XTuner DPO stage: preference pairs, DPO / ORPO with trl → model/dpo",
              Verb("pairs", cmd_pairs, "build pref/data from sft/data and corpus/clean", (CUSTOM,)),
              Verb("run", cmd_run, "the whole stage: pref/data, then DPO / ORPO → model/<method>", (
                  CUSTOM,
                  opt("--method", choices=("dpo", "orpo")),
                  opt("--tuning", choices=("full", "lora")),
                  opt("--beta", type=float),
                  opt("--learning-rate", type=float),
                  *RUN_LENGTH)),
              Verb("check", cmd_check, "validate a pair file: every bad line with its reason", (opt("file"),),
                   profile=False, home=False))
