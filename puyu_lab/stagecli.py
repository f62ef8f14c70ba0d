"""What every stage's ``puyu-lab <stage> …`` verbs share, so that a stage's ``cli.py`` states only what is its
own: its verbs and their options, how the options change its config, and what a verb prints.

- :func:`add_stage`: the stage's parser and its verbs (:class:`Verb`), each with ``--profile`` first and
  ``--home`` last unless it says otherwise; :func:`opt` is one option, as ``argparse`` takes it.
- :data:`RUN_LENGTH`: ``--max-steps`` and ``--budget``, the same on every training verb.
- :func:`stage_config`: the verb's config — the profile's, or the ``--config`` file's — with the options the
  command line set on top.
- :func:`check_file`: the ``check`` verb of a stage that takes a learner's own file, one line per bad record.
- :func:`ended` and :func:`wrote`: the lines a run ends with.

It sits below the stages (it imports only the core: profiles, errors), so any stage may use it."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Opt:
    """One command-line option: the arguments of ``ArgumentParser.add_argument``."""

    flags: tuple[str, ...]
    kw: dict[str, Any]


def opt(*flags: str, **kw: Any) -> Opt:
    """``opt("--n-tokens", type=int, help=…)``: an option as ``add_argument`` takes it (its default is ``None``:
    not set, so the profile's value stands)."""
    return Opt(flags, kw)


# the run length of every training verb: a fixed number of steps, or seconds of training (see run_length)
RUN_LENGTH = (opt("--max-steps", type=int, help="exactly this many steps (no time budget)"),
              opt("--budget", type=float, help="seconds of training (0: the recipe's steps exactly)"))


@dataclass(frozen=True)
class Verb:
    """One verb of a stage: ``puyu-lab <stage> <name> …`` runs ``fn(args)``, whose return is the exit status."""

    name: str
    fn: Callable[[argparse.Namespace], int]
    help: str
    opts: Sequence[Opt] = ()
    profile: bool = True  # takes --profile (a verb that sizes nothing, e.g. ``check``, does not)
    home: bool = True  # takes --home, the workspace (default $PUYU_LAB_HOME or ./workspace)


def add_stage(sub, stage: str, help: str, *verbs: Verb) -> None:
    """``puyu-lab <stage> <verb> …``: the stage's parser on ``sub`` (the top-level subparsers) and its verbs."""
    parser = sub.add_parser(stage, help=help)
    verb_parsers = parser.add_subparsers(dest=f"{stage}_cmd", required=True)
    for v in verbs:
        p = verb_parsers.add_parser(v.name, help=v.help)
        if v.profile:
            p.add_argument("--profile", default=None)
        for o in v.opts:
            p.add_argument(*o.flags, **o.kw)
        if v.home:
            p.add_argument("--home", default=None)
        p.set_defaults(fn=v.fn)


def run_length(args: argparse.Namespace) -> dict:
    """The config changes ``--max-steps`` and ``--budget`` ask for: a fixed number of steps drops the time
    budget; a budget of 0 means the recipe's steps exactly (no budget)."""
    changes: dict = {}
    if getattr(args, "max_steps", None):
        changes.update(max_steps=args.max_steps, budget_s=None)
    if getattr(args, "budget", None) is not None:
        changes["budget_s"] = args.budget or None
    return changes


def stage_config(args: argparse.Namespace, cls, *fields: str, check: bool = True,
                 load: Callable[[dict], Any] | None = None, **changes):
    """The verb's config: ``cls.for_profile(--profile)``, or, where the verb takes ``--config`` and it is given,
    the config saved in that JSON file (read by ``load``, default ``cls.from_dict``); with the ``fields`` the
    command line set (``--n-tokens`` → ``n_tokens``), the run length it asked for (:func:`run_length`) and
    ``changes`` on top. ``check``: a profile that needs hardware this machine lacks fails here, before the verb
    starts (the verbs that train or run a model), instead of half-way."""
    from .errors import read_text_file
    from .profiles import get_profile, overrides

    changes = {**overrides(args, *fields), **run_length(args), **changes}
    if getattr(args, "config", None):
        saved = json.loads(read_text_file(args.config, "config file"))
        return replace((load or cls.from_dict)(saved), **changes)
    return cls.for_profile(get_profile(args.profile, check=check), **changes)


def check_file(path: str, load: Callable[[str], tuple[list, list]], what: str) -> int:
    """The ``check`` verb: ``load(path)`` → (good, bad); each bad record as ``path:reason``, then the counts.
    The exit status is 1 when there is a bad one."""
    good, bad = load(path)
    for b in bad:
        print(f"{path}:{b}")
    print(f"{len(good)} valid {what}(s), {len(bad)} bad")
    return 1 if bad else 0


def ended(res) -> str:
    """How a training run ended: ``finished at step 40/40`` or ``stopped at step 12/40``."""
    return f"{'stopped' if res.stopped else 'finished'} at step {res.steps}/{res.max_steps}"


def wrote(*artifacts, metrics: bool = False) -> int:
    """The line a verb ends with: the artifacts it wrote (with their figures when ``metrics``); exit status 0."""
    names = ", ".join(f"{a.name}: {a.metrics}" if metrics else a.name for a in artifacts)
    print(f"wrote {names}")
    return 0
