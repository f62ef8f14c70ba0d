"""Checks as data: what one check verifies, what it measured, and the report card of a run.

A check reads the learner's *own* artifacts through :mod:`puyu_lab.artifacts` and returns an
:class:`Outcome`: passed or not, the figure it measured (recomputed from the artifact's evidence —
per-question files, the GGUF files themselves — where the artifact has any), and, when the stage also
wrote that figure into its manifest, the ``claimed`` value, so a grader can see a metric that was
edited after the fact. ``scope`` says where a check can be re-run: ``artifact`` checks run again on a
learner's bundle; ``machine`` checks (the tour's) describe the learner's computer and are only
reported.

What to do when a check fails is written in both languages: ``hint`` (English) and ``hint_zh`` (Chinese, the
same code in the same backticks). So is what a check measured: an :class:`Outcome`'s ``figure`` and ``detail`` are
written with :func:`say` (``say("中文", "English")``, one place for both). A :class:`Result` keeps both languages of
each, and the card, its HTML and :class:`ChecksFailed` show the one in the language
:func:`puyu_lab.i18n.get_language` names when they are drawn.

nbgrader and otter-grader grade *code* cells against tests; nothing in their model checks the outcome
of an ML exercise on the learner's own artifacts, so this small registry is written here.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

from ..errors import Msg, zh_of
from ..i18n import get_language, tr
from ..workspace import MissingArtifact, Workspace, WorkspaceError


def say(zh: str, en: str) -> Msg:
    """A figure or detail of a check in both languages, written side by side where it is made (the order of
    :func:`puyu_lab.i18n.tr`): the :class:`Result` keeps both, and the card shows the one current when it is drawn.
    It is the English string (it compares and formats as that); ``.zh`` is the Chinese."""
    return Msg(en, zh)


def both_of(text) -> tuple[str, str]:
    """(English, Chinese) of a :func:`say` text; a plain string (a number, a file name) is both."""
    return str(text), zh_of(text)


def joined(*parts) -> Msg:
    """:func:`say` texts (or plain strings) one after another, each language with its own."""
    return Msg("".join(str(p) for p in parts), "".join(zh_of(p) for p in parts))


def _now(pair: tuple[str, str]) -> str:
    return pair[1] if get_language() == "zh" else pair[0]


@dataclass
class Outcome:
    ok: bool
    figure: str  # the measured figure, as a learner reads it ("95 % (19/20)"); words in it: say("中文", "English")
    value: float | None = None  # the same figure as a number, when it is one
    claimed: float | None = None  # what the stage's manifest says about the same figure
    detail: str = ""  # say("中文", "English") too


@dataclass(frozen=True)
class Check:
    id: str  # "<lab key>.<name>", e.g. "finetune.selfcog"
    lab: str  # the notebook: "03_finetune.ipynb"
    zh: str
    en: str
    verifies: str  # what, on which artifact, with the tolerance
    hint: str  # what to do when it fails (English)
    hint_zh: str  # the same, in Chinese: the same code, config fields and lab numbers
    fn: Callable[["Context"], Outcome]
    needs: tuple[str, ...] = ()  # artifacts it reads
    camp: str = ""  # the InternLM camp (书生大模型实战营) task it corresponds to, where one exists
    scope: str = "artifact"  # "artifact" (re-run on a bundle) or "machine" (reported only)
    rel_tol: float = 1e-3  # how far ``claimed`` may be from ``value``
    # 作业: "" for a lab's own self-check; "basic" (基础) or "advanced" (进阶) for a homework task, which is
    # optional: it never fails a lab's self-check cell or the chain, and a teacher turns it on or off in the probe file
    homework: str = ""
    verifies_zh: str = ""  # ``verifies`` in Chinese

    @property
    def title(self) -> str:
        return f"{self.zh} {self.en}"

    def hint_in(self, lang: str | None = None) -> str:
        """The hint in ``lang`` ("zh" or "en"; by default the current language)."""
        return self.hint_zh if (lang or get_language()) == "zh" else self.hint


def _pick(lang: str | None, en: str, zh: str, fallback: str) -> str:
    lang = lang or get_language()
    return (zh if lang == "zh" else en) or fallback


@dataclass
class Result:
    id: str
    lab: str
    title: str
    verifies: str
    ok: bool
    status: str  # "pass", "fail", "missing" (an artifact it needs is absent), "error" (a bug or a corrupt file)
    figure: str  # in the language current when the check ran; figure_en / figure_zh hold both
    hint: str  # in the language current when the check ran; hint_en / hint_zh hold both
    camp: str = ""
    scope: str = "artifact"
    value: float | None = None
    claimed: float | None = None
    consistent: bool = True  # False when the manifest's figure differs from the recomputed one
    detail: str = ""
    seconds: float = 0.0
    hint_en: str = ""  # empty in a report written before hints were bilingual
    hint_zh: str = ""
    homework: str = ""  # "basic" / "advanced" for a homework task (see Check.homework)
    verifies_zh: str = ""
    figure_en: str = ""  # empty in a report written before figures were bilingual
    figure_zh: str = ""
    detail_en: str = ""
    detail_zh: str = ""

    def figure_in(self, lang: str | None = None) -> str:
        """What the check measured, in ``lang`` (by default the current language), else the stored ``figure``."""
        return _pick(lang, self.figure_en, self.figure_zh, self.figure)

    def detail_in(self, lang: str | None = None) -> str:
        return _pick(lang, self.detail_en, self.detail_zh, self.detail)

    def verifies_in(self, lang: str | None = None) -> str:
        return _pick(lang, self.verifies, self.verifies_zh, self.verifies)

    def hint_in(self, lang: str | None = None) -> str:
        """The hint in ``lang`` ("zh" or "en"; by default the current language), else the stored ``hint``."""
        return _pick(lang, self.hint_en, self.hint_zh, self.hint)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Result":
        """A result as ``as_dict`` wrote it; fields a newer or older version wrote are ignored or defaulted."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class Context:
    """What a check reads: the workspace, and a cache so that checks of one lab share a loaded file."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._cache: dict[str, Any] = {}

    def get(self, name: str):
        return self.ws.get(name)

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


REGISTRY: dict[str, Check] = {}


HOMEWORK_LEVELS = {"basic": "基础", "advanced": "进阶"}


def check(id: str, lab: str, zh: str, en: str, *, verifies: str, hint: str, hint_zh: str,
          needs: tuple[str, ...] = (), camp: str = "", scope: str = "artifact", rel_tol: float = 1e-3,
          homework: str = "", verifies_zh: str = ""):
    """Register the decorated ``fn(ctx) -> Outcome`` as a check. ``hint`` and ``hint_zh`` say, in English and in
    Chinese, what a learner should do when it fails. ``homework="basic"`` / ``"advanced"`` makes it a 作业 task:
    optional, run by :func:`puyu_lab.checks.homework`, never by a lab's self-check."""
    if not hint.strip() or not hint_zh.strip():
        raise ValueError(f"check {id!r} needs a hint in English and in Chinese (hint_zh)")
    if homework and homework not in HOMEWORK_LEVELS:
        raise ValueError(f"check {id!r}: homework={homework!r}, use one of {', '.join(HOMEWORK_LEVELS)}")

    def deco(fn):
        if id in REGISTRY:
            raise ValueError(f"check {id!r} registered twice")
        REGISTRY[id] = Check(id=id, lab=lab, zh=zh, en=en, verifies=verifies, hint=hint, hint_zh=hint_zh, fn=fn,
                             needs=needs, camp=camp, scope=scope, rel_tol=rel_tol, homework=homework,
                             verifies_zh=verifies_zh)
        return fn
    return deco


def close(a: float | None, b: float | None, rel_tol: float = 1e-3) -> bool:
    if a is None or b is None:
        return True
    return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=1e-9)


def pct(x: float, n: int | None = None, of: int | None = None) -> str:
    s = f"{x:.1%}"
    return f"{s} ({n}/{of})" if n is not None and of is not None else s


MISSING_EVIDENCE = say("缺少证据文件", "missing evidence")  # an artifact is there, a file of it is not


def _texts(figure, detail) -> dict[str, str]:
    """A Result's figure and detail fields: each in the current language and in both."""
    f, d = both_of(figure), both_of(detail)
    return dict(figure=_now(f), figure_en=f[0], figure_zh=f[1], detail=_now(d), detail_en=d[0], detail_zh=d[1])


def _said(exc: BaseException, limit: int | None = None) -> Msg:
    """What an exception says, in both languages (a PuyuError has both; anything else says it once)."""
    en = getattr(exc, "en", None) or str(exc)
    zh = getattr(exc, "zh", None) or en
    return Msg(en[:limit], zh[:limit])


def run_one(c: Check, ctx: Context) -> Result:
    t0 = time.perf_counter()
    base = dict(id=c.id, lab=c.lab, title=c.title, verifies=c.verifies, hint=c.hint_in(), hint_en=c.hint,
                hint_zh=c.hint_zh, camp=c.camp, scope=c.scope, homework=c.homework, verifies_zh=c.verifies_zh)
    missing = [n for n in c.needs if not ctx.ws.exists(n)]
    if missing:
        from ..stages import stage_for_artifact

        labs = sorted({st.lab for n in missing if (st := stage_for_artifact(n)) is not None})
        if c.homework:
            todo = say(f"先运行 {c.lab} 作业一节里这道题的代码单元", f"run this task's cell in the 作业 section of {c.lab}")
        else:
            todo = say(f"先运行 {', '.join(labs) or '产出它的实验'}", f"run {', '.join(labs) or 'the lab that makes it'} first")
        return Result(**base, ok=False, status="missing",
                      **_texts(say(f"缺少 {', '.join(missing)}", f"missing {', '.join(missing)}"), todo),
                      seconds=time.perf_counter() - t0)
    try:
        out = c.fn(ctx)
        try:
            consistent = close(out.value, out.claimed, c.rel_tol)
        except (TypeError, ValueError):  # a claimed figure that is not a number was not written by a stage
            consistent = False
            out.claimed = None
    except (MissingArtifact, FileNotFoundError) as exc:
        return Result(**base, ok=False, status="missing", **_texts(MISSING_EVIDENCE, _said(exc)),
                      seconds=time.perf_counter() - t0)
    except Exception as exc:  # a corrupt file (or a bug in the check): this check errs, the card goes on
        return Result(**base, ok=False, status="error", **_texts(type(exc).__name__, _said(exc, 300)),
                      seconds=time.perf_counter() - t0)
    return Result(**base, ok=bool(out.ok), status="pass" if out.ok else "fail",
                  value=None if out.value is None else float(out.value),
                  claimed=None if out.claimed is None else float(out.claimed), consistent=consistent,
                  **_texts(out.figure, out.detail), seconds=time.perf_counter() - t0)


@dataclass
class ReportCard:
    workspace: str
    results: list[Result] = field(default_factory=list)
    created: str = ""
    seconds: float = 0.0

    # the figures below count the labs' own checks: homework tasks are optional and counted apart
    @property
    def required(self) -> list[Result]:
        return [r for r in self.results if not r.homework]

    @property
    def homework(self) -> list[Result]:
        return [r for r in self.results if r.homework]

    @property
    def passed(self) -> int:
        return sum(r.ok for r in self.required)

    @property
    def total(self) -> int:
        return len(self.required)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.required)

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.required if not r.ok]

    def by_lab(self, homework: bool = False) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for r in (self.homework if homework else self.required):
            p, t = out.get(r.lab, (0, 0))
            out[r.lab] = (p + r.ok, t + 1)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"workspace": self.workspace, "created": self.created, "seconds": round(self.seconds, 3),
                "passed": self.passed, "total": self.total, "results": [r.as_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: dict) -> "ReportCard":
        return cls(d.get("workspace", ""), [Result.from_dict(r) for r in d.get("results", [])], d.get("created", ""),
                   d.get("seconds", 0.0))

    def text(self) -> str:
        """The terminal table: one line per check, the hint (in the current language) under each one that failed;
        the homework tasks, when the card has any, in a section of their own."""
        w_id = max([len(r.id) for r in self.results] + [5]) + 2
        lines = [f"{'':2}{tr('自检', 'check'):<{w_id}}{tr('数字', 'figure'):<34}{tr('标题', 'title')}"]
        for homework in (False, True):
            results = self.homework if homework else self.required
            if homework and results:
                lines.append(tr("── 作业（选做）", "── homework (optional)"))
            by_lab, lab = self.by_lab(homework), None
            for r in results:
                if r.lab != lab:
                    lab = r.lab
                    p, t = by_lab[lab]
                    lines.append(f"── {lab}  {p}/{t}")
                mark = "✓" if r.ok else "✗"
                level = f"[{HOMEWORK_LEVELS[r.homework]}] " if r.homework in HOMEWORK_LEVELS else ""
                lines.append(f"{mark:2}{r.id:<{w_id}}{r.figure_in()[:33]:<34}{level}{r.title}")
                if not r.ok:
                    detail = r.detail_in()
                    lines.append(f"{'':2}{'':<{w_id}}→ {r.hint_in()}" + (f" ({detail})" if detail else ""))
                elif not r.consistent:
                    lines.append(f"{'':2}{'':<{w_id}}! " + tr(f"清单写的是 {r.claimed:g}，证据算出 {r.value:g}",
                                                              f"the manifest says {r.claimed:g}, the evidence {r.value:g}"))
        lines.append(tr(f"{self.passed}/{self.total} 项自检通过，用时 {self.seconds:.1f} 秒",
                        f"{self.passed}/{self.total} checks passed in {self.seconds:.1f} s"))
        if self.homework:
            done = sum(r.ok for r in self.homework)
            lines.append(tr(f"作业：完成 {done}/{len(self.homework)} 项", f"homework: {done}/{len(self.homework)} done"))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .report import card_fragment

        return card_fragment(self)


class ChecksFailed(AssertionError):
    """Raised by :func:`verify` in a lab's self-check cell: names each failed check and its hint."""


def select(lab: str | None = None, homework: bool | None = False) -> list[Check]:
    """The registered checks of one lab (``"03"``, ``"03_finetune"``, ``"finetune"`` or the notebook's
    name), or of every lab, in the chain's order: the labs' own checks (``homework=False``), the homework tasks
    (``True``) or both (``None``)."""
    from . import labs  # noqa: F401  (registers every lab's checks)

    checks = [c for c in REGISTRY.values() if homework is None or bool(c.homework) == homework]
    if lab is None:
        return sorted(checks, key=lambda c: c.lab)
    key = lab.removesuffix(".ipynb")
    chosen = [c for c in checks if c.lab.removesuffix(".ipynb") == key or c.lab.startswith(key)
              or c.id.split(".", 1)[0] == key]
    if not chosen:
        known = sorted({c.lab for c in checks})
        from ..errors import InputError

        raise InputError(f"no checks for lab {lab!r}: labs with checks are {', '.join(known)}",
                         zh=f"实验 {lab!r} 没有自检项；有自检的实验：{', '.join(known)}")
    return sorted(chosen, key=lambda c: c.lab)


def run(ws: Workspace | None = None, lab: str | None = None, *, scope: str | None = None,
        on_result: Callable[[Result], None] | None = None, homework: bool | None = False,
        only: Callable[[Check], bool] | None = None) -> ReportCard:
    """Run the checks of ``lab`` (or all) on ``ws``; ``scope="artifact"`` leaves out machine checks; ``homework``
    as in :func:`select`; ``only`` keeps the checks it accepts (a teacher's homework switches)."""
    import datetime as dt

    ws = ws or Workspace()
    ctx = Context(ws)
    card = ReportCard(str(ws.root), created=dt.datetime.now().isoformat(timespec="seconds"))
    t0 = time.perf_counter()
    for c in select(lab, homework):
        if (scope is not None and c.scope != scope) or (only is not None and not only(c)):
            continue
        res = run_one(c, ctx)
        card.results.append(res)
        if on_result:
            on_result(res)
    card.seconds = time.perf_counter() - t0
    return card
