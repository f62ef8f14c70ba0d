"""The teacher's side of a class on the hub: ``puyu-lab hub grade`` collects each learner's newest bundle and runs
``puyu-lab grade`` over them, giving one gradebook with a row per learner.

A learner hands in with the plain ``puyu-lab submit``: it writes ``~/workspace/report/submission-*.zip``, and the
learner's home (mode 2710, group ``<class>-teachers``, see :mod:`puyu_lab.hub.accounts`) lets the teacher's account
— and no other learner — read it there. Collecting takes each learner's newest bundle from their own home, so where
a bundle came from is the account it came from: a bundle that names another learner inside is reported.
The grading itself is :func:`puyu_lab.checks.grade.grade`, unchanged (integrity, re-checks, hidden probes).
"""
from __future__ import annotations

import json
import pwd
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .accounts import State


@dataclass
class Collected:
    folder: Path
    found: dict[str, Path] = field(default_factory=dict)  # learner → the bundle copied for grading
    missing: list[str] = field(default_factory=list)  # no bundle yet
    unreadable: list[str] = field(default_factory=list)  # the home does not let this account in
    notes: list[str] = field(default_factory=list)


def newest_bundle(learner: str) -> Path | None:
    report = Path(pwd.getpwnam(learner).pw_dir) / "workspace" / "report"
    bundles = [p for p in report.glob("submission-*.zip") if p.is_file()]
    return max(bundles, key=lambda p: p.stat().st_mtime) if bundles else None


def collect(state: State, out: Path) -> Collected:
    """Copy each learner's newest bundle to ``out/submissions/<learner>.zip``."""
    roster = state.class_info()
    subs = out / "submissions"
    subs.mkdir(parents=True, exist_ok=True)
    for old in subs.glob("*.zip"):
        old.unlink()
    got = Collected(subs)
    for learner in roster.learners:
        try:
            src = newest_bundle(learner)
        except KeyError:
            got.missing.append(learner)
            continue
        except PermissionError:
            got.unreadable.append(learner)
            continue
        if src is None:
            got.missing.append(learner)
            continue
        dest = subs / f"{learner}.zip"
        shutil.copyfile(src, dest)
        got.found[learner] = dest
        try:
            with zipfile.ZipFile(dest) as z:
                said = json.loads(z.read("bundle.json").decode("utf-8")).get("learner")
            if said != learner:
                got.notes.append(f"{learner}: the bundle in this account's home says it is {said!r}")
        except Exception:  # noqa: BLE001 — a broken bundle is the grader's to report
            pass
    return got


def grade_class(state: State, out: Path, probes: str | None = None, say=print):
    """Collect, then grade: the gradebook (``out/gradebook.csv`` / ``.html``) and what was collected."""
    from ..checks.grade import grade
    from ..i18n import tr

    got = collect(state, out)
    for n in got.missing:
        say("  " + tr(f"{n}：还没有提交（`puyu-lab submit`）", f"{n}: nothing submitted yet (`puyu-lab submit`)"))
    for n in got.unreadable:
        say("  " + tr(f"{n}：无法读取其主目录（此账户不在教师组？）", f"{n}: cannot read their home (is this account "
                                                                 "in the teachers' group?)"))
    for note in got.notes:
        say("  ! " + note)
    if not got.found:
        raise InputError("no learner has submitted yet: each learner runs `puyu-lab submit` (it writes "
                         "~/workspace/report/submission-*.zip, which this account can read)",
                         zh="还没有学员提交：请每位学员运行 `puyu-lab submit`（它写出 ~/workspace/report/submission-*.zip，"
                            "教师账户可以读取）")
    book = grade(got.folder, out, probes=probes, on_progress=say)
    return book, got
