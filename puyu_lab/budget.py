"""Time-budgeted training: a Trainer run that ends inside a wall-clock budget with its schedule complete.

A workshop runs on a clock, and "the pretraining lab takes three minutes" must hold on a fast Xeon and
on a slow laptop alike. A fixed number of steps cannot promise that; a fixed *time* can — the
"cramming" recipe (Geiping & Goldstein, 2022: a fixed budget on one device). :class:`TimeBudget` is a
``transformers.TrainerCallback`` that

1. measures the first ``probe_steps`` optimizer steps on this machine,
2. **plans** the run: how many steps fit in what is left of the budget once the planned evaluations,
   samples and checkpoints (each measured, or priced from a measurement before training) are paid for;
   the warmup is the same share of the run as in the fixed-step recipe, the evaluation / sample / save
   points are spread over the planned steps in the recipe's numbers,
3. drives the Trainer's own learning-rate scheduler with a cosine-with-warmup curve (the same formula
   as transformers' ``get_cosine_schedule_with_warmup``) over the planned steps, so the schedule decays
   to its final value at the last step whatever the machine,
4. re-plans as measurements come in (after every evaluation, every ~5 % of the run and every step of its last
   tenth) and stops the
   run at the planned step — or, if the machine slows down badly, at the last step that still fits.

The plan (budget, steps bought, measured seconds per step, overheads, the machine) is reported through
``on_plan`` and kept in :attr:`TimeBudget.plan` for the stage's manifest.

Hand-written because neither transformers, accelerate nor trl plans steps from a time budget:
``TrainingArguments`` knows ``max_steps`` and ``num_train_epochs``, and a ``max_time``-style stop would
cut the schedule off half-way instead of completing it.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from .events import BUDGET

SCALE_ENV = "PUYU_LAB_BUDGET_SCALE"
NEVER = 10**12  # an eval / save interval that never comes (before the plan exists)
CEILING = 20  # a budgeted run may buy at most this many times its fixed-step recipe's steps


@dataclass
class Plan:
    """What a budget bought on this machine (the manifest's ``budget`` entry)."""

    budget_s: float
    total_steps: int  # the steps the budget buys (the schedule ends here)
    warmup_steps: int
    step_s: float = 0.0  # measured seconds per optimizer step
    eval_s: float = 0.0  # measured (or priced) seconds per evaluation
    sample_s: float = 0.0
    save_s: float = 0.0
    evals: int = 0  # how many of each the run makes (the recipe's numbers), spread evenly, the last at the end
    samples: int = 0
    saves: int = 0
    eval_at: list = field(default_factory=list)  # the steps planned for them
    sample_at: list = field(default_factory=list)
    save_at: list = field(default_factory=list)
    planned_at: int = 0  # the step of the latest plan
    replans: int = 0
    min_steps: int = 0  # the floor: never fewer steps than this (the fewest on which the lab's checks hold)
    over_budget: bool = False  # this machine needs longer than the budget for the floor's steps
    cut_short: bool = False  # the last step that still fitted came before the plan's end (a machine slowing down)
    history: list = field(default_factory=list)  # (step, total_steps) at each plan

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        m, s = divmod(int(round(self.budget_s)), 60)
        return f"budget {m}:{s:02d} — {self.total_steps} steps on this machine ({self.step_s:.3f} s/step)"


def spread(total: int, count: int, done: int, after: int) -> list[int]:
    """The steps of events ``done + 1 … count`` of ``count`` spread evenly over ``total`` steps (the last at
    ``total``), none at or before step ``after`` (those already passed move just after it, in order)."""
    out: list[int] = []
    for i in range(done + 1, count + 1):
        at = max(after + 1, round(total * i / count), (out[-1] + 1) if out else 0)
        if at <= total:
            out.append(at)
    return out


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """transformers' ``get_cosine_schedule_with_warmup`` multiplier (half a cosine to 0)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


class _Schedule:
    """The scheduler's multiplier, reading the live plan (a callable object, so it can be re-planned)."""

    def __init__(self, plan: Plan):
        self.plan = plan

    def __call__(self, step: int) -> float:
        return cosine_with_warmup(step, self.plan.total_steps, self.plan.warmup_steps)


def make_budget_callback(seconds: float, *, guess_steps: int, warmup_ratio: float, evals: int = 0,
                         samples: int = 0, saves: int = 0, eval_cost_s: float | None = None,
                         sample_cost_s: float | None = None, save_cost_s: float | None = None,
                         probe_steps: int = 4, max_steps: int | None = None, resume_total: int | None = None,
                         min_steps: int = 0, on_plan: Callable[[Plan], None] | None = None,
                         followers: list | None = None):
    """A :class:`TimeBudget` (a ``TrainerCallback``; transformers is imported here, lazily).

    ``guess_steps``: the schedule's length until the first plan (the fixed-step recipe's); ``evals``,
    ``samples``, ``saves``: how many of each the run makes, spread evenly (the last evaluation and save come
    at the end); ``*_cost_s``: their prices before one is measured; ``max_steps``: a ceiling (the
    ``TrainingArguments.max_steps`` the trainer was given); ``resume_total``: a resumed run keeps the total
    its first part planned; ``min_steps``: a floor — the run makes at least these steps even where that takes longer
    than the budget (recorded as ``over_budget``). ``followers``: objects with a ``sample_steps`` attribute (the event bridge: the steps it samples at),
    set at each plan."""
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def __init__(self):
            total = int(resume_total or guess_steps)
            self.plan = Plan(float(seconds), total, max(0, round(warmup_ratio * total)),
                             evals=evals, samples=samples, saves=saves, min_steps=min_steps)
            self.schedule = _Schedule(self.plan)
            self.fixed = resume_total is not None
            self.t0 = None
            self.step_t0 = None
            self.gap_t0 = None
            self.step_times: list[float] = []
            self.sample_times: list[float] = []  # the steps that also sampled (the bridge samples in on_step_end)
            self.costs = {"eval": [], "save": []}
            self.done = {"eval": 0, "save": 0, "sample": 0}
            self._gap_marks: dict[str, float] = {}
            self._replan_due = False
            self.cap = max_steps or NEVER

        def start(self) -> None:
            """Start the clock (call it just before ``trainer.train()``: the Trainer's own set-up counts too)."""
            self.t0 = time.perf_counter()

        # -- the plan ---------------------------------------------------------------------------
        def _step_s(self) -> float:
            # the mean since the first step (which pays for warm-up allocations): SFT's length-grouped batches
            # differ from step to step, so the median (or a short window) under-prices the steps to come
            times = self.step_times[1:] or self.step_times
            return statistics.fmean(times) if times else 0.0

        def _price(self, kind: str, prior: float | None, tau: float) -> float:
            if kind == "sample":
                seen = [t - tau for t in self.sample_times]
            else:
                seen = self.costs[kind]
            if seen:
                return max(0.0, statistics.fmean(seen[-3:]))
            return prior if prior is not None else 2 * tau

        def _replan(self, state) -> None:
            p = self.plan
            done = state.global_step
            tau = self._step_s()
            if tau <= 0 and not self.fixed:
                return
            p.step_s = round(tau, 4)
            p.eval_s = round(self._price("eval", eval_cost_s, tau), 3)
            p.save_s = round(self._price("save", save_cost_s, tau), 3)
            p.sample_s = round(self._price("sample", sample_cost_s, tau), 3)
            if not self.fixed:
                left_overhead = sum(max(0, n - self.done[k]) * c for k, n, c in (
                    ("eval", evals, p.eval_s), ("save", saves, p.save_s), ("sample", samples, p.sample_s)))
                # a step or 2 % of the budget spare, whichever is more: the Trainer's own work after the last step
                left = p.budget_s - (time.perf_counter() - self.t0) - left_overhead - max(tau, 0.02 * p.budget_s)
                total = done + max(0, int(left // tau))
                p.over_budget = total < min_steps
                p.total_steps = max(1, min(max(total, min_steps), self.cap), done + (1 if left > 0 else 0))
                p.warmup_steps = max(0, round(warmup_ratio * p.total_steps))
            p.eval_at = spread(p.total_steps, evals, self.done["eval"], done)
            p.save_at = spread(p.total_steps, saves, self.done["save"], done)
            p.sample_at = spread(p.total_steps, samples, self.done["sample"], done)
            p.planned_at = done
            p.replans += 1
            p.history.append((done, p.total_steps))
            state.max_steps = p.total_steps
            for f in followers or ():
                f.sample_steps = set(p.sample_at)
            if on_plan is not None:
                on_plan(p)

        # -- the Trainer's hooks ----------------------------------------------------------------
        def on_train_begin(self, args, state, control, lr_scheduler=None, **kw):
            from torch.optim.lr_scheduler import LambdaLR

            if not isinstance(lr_scheduler, LambdaLR):
                raise TypeError(f"a time budget drives the Trainer's LambdaLR scheduler; this trainer has "
                                f"{type(lr_scheduler).__name__} (use lr_scheduler_type='cosine')")
            lr_scheduler.lr_lambdas = [self.schedule] * len(lr_scheduler.optimizer.param_groups)
            for g, base in zip(lr_scheduler.optimizer.param_groups, lr_scheduler.base_lrs):
                g["lr"] = base * self.schedule(lr_scheduler.last_epoch)  # a resumed run: its own step's rate
            if self.t0 is None:
                self.t0 = time.perf_counter()
            # evaluations and checkpoints come at the plan's steps (and, by the Trainer's own rule, at the end)
            state.eval_steps = state.save_steps = NEVER
            if self.fixed:
                self._replan(state)
                return
            state.max_steps = self.cap  # nothing happens while the first steps are measured
            for f in followers or ():
                f.sample_steps = set()
            if on_plan is not None:  # the budget, before the first steps are measured (step_s 0)
                on_plan(self.plan)

        def on_step_begin(self, args, state, control, **kw):
            now = time.perf_counter()
            if self.gap_t0 is not None:
                mark = self.gap_t0
                for kind in ("eval", "save"):  # _maybe_log_save_evaluate: log, evaluate, then save
                    if kind in self._gap_marks:
                        self.costs[kind].append(self._gap_marks[kind] - mark)
                        mark = self._gap_marks[kind]
                self._gap_marks.clear()
            self.step_t0 = now
            if self._replan_due or (not self.fixed and state.global_step == probe_steps):
                self._replan_due = False
                self._replan(state)

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            p, step = self.plan, state.global_step
            sampled = step in p.sample_at and p.planned_at < step  # the bridge sampled in its on_step_end
            if self.step_t0 is not None:
                (self.sample_times if sampled else self.step_times).append(now - self.step_t0)
            self.done["sample"] += bool(sampled)
            self.gap_t0 = now
            if step in p.eval_at:
                control.should_evaluate = True
            if step in p.save_at:
                control.should_save = True
            if self.fixed or step < probe_steps:
                return
            # re-plan every ~5 % of the run, and every step in its last tenth (the end is where a slip shows)
            if step % max(1, p.total_steps // 20) == 0 or step >= 0.9 * p.total_steps:
                self._replan_due = True
            # the machine slowed down: stop at the last step that still fits (the schedule is then cut short)
            left = p.budget_s - (now - self.t0)
            if min_steps <= step < p.total_steps and left < self._step_s() + (p.eval_s if evals else 0) + (
                    p.save_s if saves else 0):
                p.cut_short = True
                p.total_steps = step
                state.max_steps = step
                control.should_training_stop = True
                control.should_evaluate = bool(evals)
                control.should_save = bool(saves)

        def on_evaluate(self, args, state, control, **kw):
            self._gap_marks["eval"] = time.perf_counter()
            self.done["eval"] += 1
            self._replan_due = True

        def on_save(self, args, state, control, **kw):
            self._gap_marks["save"] = time.perf_counter()
            self.done["save"] += 1

    return TimeBudget()


def budget_scale() -> float:
    """``$PUYU_LAB_BUDGET_SCALE`` (default 1): every stage's time budget is multiplied by it. A workshop on slow
    laptops can give each lab more time (2), a quick demonstration less (0.5); 0 gives every stage only its floor
    (``min_steps``), the steps the slowest machine makes — how the floors' checks are tested."""
    import os

    raw = os.environ.get(SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        v = float(raw)
    except ValueError:
        v = -1.0
    if not (v >= 0 and math.isfinite(v)):
        from .errors import InputError

        raise InputError(f"${SCALE_ENV}={raw!r}: set a number ≥ 0 (1 = the profile's budgets, 2 = twice as long, "
                         f"0 = only each stage's floor of steps), or unset it",
                         zh=f"${SCALE_ENV}={raw!r}：请设为 ≥ 0 的数（1 = 配置档的时间预算，2 = 两倍时长，"
                            f"0 = 每个阶段只跑最少步数），或者取消这个变量")
    return v


def for_stage(seconds: float, emitter, *, resume_from: str | None = None, **kw):
    """A stage's :class:`TimeBudget`: its plans go out as ``budget`` events (the panels' "budget 3:00 — 412
    steps on this CPU"); a run resumed from ``resume_from`` (a checkpoint folder) keeps the total its first
    part planned (the Trainer saved it as the state's ``max_steps``)."""
    import json
    from pathlib import Path

    total = None
    if resume_from:
        state = Path(resume_from) / "trainer_state.json"
        if state.is_file():
            total = json.loads(state.read_text(encoding="utf-8")).get("max_steps")

    def on_plan(p: Plan) -> None:
        emitter.emit(BUDGET, **p.to_dict(), summary=p.summary())

    return make_budget_callback(seconds * budget_scale(), resume_total=total, on_plan=on_plan, **kw)


def floor_steps(min_steps: int | None, recipe_steps: int) -> int:
    """A budgeted run's floor: the config's ``min_steps`` (never above the recipe's steps), else the recipe's."""
    return recipe_steps if min_steps is None else max(1, min(int(min_steps), recipe_steps))


def train_timed(trainer, budget=None, *, resume_from: str | None = None) -> float:
    """``trainer.train()`` (resumed from ``resume_from``, a checkpoint folder), with the time ``budget``'s clock
    started just before it; returns the loop's seconds (``budget_metrics``' ``train_seconds``)."""
    if budget is not None:
        budget.start()
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    return time.perf_counter() - t0


def budget_metrics(plan: Plan | None, *, steps: int, train_seconds: float) -> dict:
    """The manifest's record of a budgeted run (``{}`` for a fixed-step run)."""
    if plan is None:
        return {}
    from .numerics import machine

    return {"budget": {**plan.to_dict(), "steps": steps, "train_seconds": round(train_seconds, 1),
                       "machine": machine()}}


def describe(metrics: dict, lang: str = "en") -> str:
    """One line for a learner, in ``lang`` (zh or en; a lab passes ``pl.get_language()``): what a run's budget bought
    on this machine (and its model FLOP utilisation)."""
    zh = lang.startswith("zh")
    b = metrics.get("budget")
    util = ""
    if metrics.get("mfu"):
        util = (f"；模型 FLOP 利用率 {metrics['mfu']:.0%}（矩阵乘探针测得 {metrics['probe_gflops']:.1f} GFLOP/s，"
                f"实际 {metrics['model_gflops']:.1f}）" if zh else
                f"; model FLOP utilisation {metrics['mfu']:.0%} ({metrics['model_gflops']:.1f} of the "
                f"{metrics['probe_gflops']:.1f} GFLOP/s the matmul probe measured)")
    if not b:
        return (f"{metrics.get('steps')} 步（固定步数，没有时间预算）{util}" if zh else
                f"{metrics.get('steps')} steps (a fixed number: no time budget){util}")
    m = b["machine"]
    cut = ""
    if b.get("cut_short"):
        cut = "——提前结束：机器变慢了" if zh else " — cut short: the machine slowed down"
    if b.get("over_budget"):
        cut += (f"——超出预算：这台 CPU 跑完保底的 {b['min_steps']} 步（实验自检能通过的最少步数）需要更久" if zh else
                f" — over budget: this CPU needs longer for the {b['min_steps']} steps the run never goes below "
                f"(the fewest on which the lab's checks hold)")
    if zh:
        return (f"{b['budget_s']:.0f} 秒的时间预算在这台 CPU（{m['cpu']}，{m['cores']} 核，{m['capability']}）上买到 "
                f"{b['steps']} 步：每步 {b['step_s']:.3f} 秒，训练循环用了 {b['train_seconds']:.1f} 秒{cut}{util}")
    return (f"time budget {b['budget_s']:.0f} s bought {b['steps']} steps on this CPU ({m['cpu']}, {m['cores']} cores, "
            f"{m['capability']}): {b['step_s']:.3f} s a step, the training loop took {b['train_seconds']:.1f} s{cut}{util}")
