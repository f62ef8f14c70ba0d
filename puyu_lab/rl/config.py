"""The RL stage's config: the policy, the reward (checked or naive), GRPO's group size, steps, learning rate, KL
weight and completion length, and the task mix the prompts are drawn from, sized per profile."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..profiles import as_profile

REWARDS = ("checked", "naive")  # checked: the answer and the call are verified; naive: any call pays (hacking)
# the naive run beside the checked one in the lab's quick profile: shorter, a larger step and mostly questions that
# need no tool, so that the hack shows within its budget. With the checked run's settings (3e-5, 30 steps) its share
# of needless calls rose from 1 % to 11-12 % on the AMX path and to 5 % on the AVX2 path — no more than the checked
# run's own 4 % there; at 3e-4 with 112 of 144 prompts needing no tool it rose from 2 % to 83 % (AMX)
NAIVE_QUICK = {"max_steps": 30, "budget_s": 40.0, "min_steps": 20, "learning_rate": 3e-4}
NAIVE_TASKS = {"arithmetic": 16, "date": 16, "notool": 112}


@dataclass(frozen=True)
class TaskMix:
    """How many training prompts of each kind: the questions of ``sft/data``'s *training* conversations (never its
    held-out parts, which the agent and eval labs measure)."""

    arithmetic: int = 48
    date: int = 32
    notool: int = 48
    seed: int = 0

    def total(self) -> int:
        return self.arithmetic + self.date + self.notool


@dataclass
class RLConfig:
    # the policy (and, frozen, the KL reference): "course" (the shipped course assistant, which can copy the
    # question's numbers into its call), an artifact (model/sft: the learner's own) or a model directory
    model: str = "course"
    reward: str = "checked"  # "checked" | "naive"
    num_generations: int = 8  # the group: completions sampled per prompt, scored against each other
    prompts_per_step: int = 2  # groups per optimizer step (trl's batch: prompts_per_step × num_generations)
    max_steps: int = 30
    learning_rate: float = 2e-5
    beta: float = 0.04  # the KL term's weight (trl's beta; 0: no reference model, no KL figure)
    max_completion_tokens: int = 48  # one assistant turn: a call or a direct answer
    temperature: float = 1.0
    seed: int = 0
    tasks: TaskMix = field(default_factory=TaskMix)
    log_every: int = 1  # trl's logging_steps: a figure per step (the panel's curves)
    bf16: bool | None = None  # None: chosen per machine (puyu_lab.numerics)
    progress_bar: bool = True
    # a wall-clock budget for trl's loop, scaled like every stage's by $PUYU_LAB_BUDGET_SCALE (puyu_lab.budget); the
    # learning rate is constant, so the run simply ends at the step that crosses it, never before min_steps (the
    # floor: what the slowest machine must still make). None: exactly max_steps
    budget_s: float | None = None
    min_steps: int | None = None

    def __post_init__(self):
        from ..errors import InputError

        if self.reward not in REWARDS:
            raise InputError(f"reward={self.reward!r}: choose one of {', '.join(REWARDS)}",
                             zh=f"reward={self.reward!r}：可选 {', '.join(REWARDS)}")
        if self.num_generations < 2:
            raise InputError(f"num_generations={self.num_generations}: GRPO compares completions within a group, "
                             "so a group needs at least 2",
                             zh=f"num_generations={self.num_generations}：GRPO 在一组补全之间相互比较，每组至少要 2 个")
        if self.prompts_per_step < 1 or self.max_completion_tokens < 1:
            raise InputError("prompts_per_step and max_completion_tokens must be at least 1",
                             zh="prompts_per_step 和 max_completion_tokens 至少为 1")

    @property
    def output(self) -> str:
        """The artifact this run writes: ``model/rl`` (checked reward) or ``model/rl-naive``."""
        return "model/rl" if self.reward == "checked" else f"model/rl-{self.reward}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RLConfig":
        d = dict(d)
        if "tasks" in d:
            d["tasks"] = TaskMix(**d["tasks"])
        return cls(**d)

    @classmethod
    def for_profile(cls, profile=None, **changes) -> "RLConfig":
        """The profile's sizes (a name, a profile or ``None``: the default), with ``changes`` on top; the quick
        profile's naive run (``reward="naive"``) is shorter, at a larger step, on mostly no-tool questions
        (:data:`NAIVE_QUICK`)."""
        name = as_profile(profile).name
        if name == "gpu":  # a real chat model: trl's GRPO recipe sizes
            cfg = cls(num_generations=8, prompts_per_step=8, max_steps=300, learning_rate=1e-6, max_completion_tokens=256,
                      tasks=TaskMix(arithmetic=600, date=400, notool=400))
        elif name == "full":
            cfg = cls(max_steps=120, tasks=TaskMix(arithmetic=200, date=120, notool=160))
        else:  # quick: measured on the course assistant shipped before its reading data took news (2-core Xeon, AMX,
            # bf16): 60 steps of 2 groups × 8 kept held-out arithmetic 40/40 and dates 39/40 and lifted no needless
            # call 37 → 39 of 40, KL ≤ 0.03. At 1e-4 arithmetic fell (35/40 → 31/40 on the first assistant). The
            # budget holds the lab's time on slower CPUs (fewer steps there, the same learning rate). Most prompts are
            # dates: there the course assistant has the most to learn (sampled answers right 81-89 % at the start), so
            # the rise shows within the budget
            cfg = cls(max_steps=60, learning_rate=3e-5, tasks=TaskMix(arithmetic=32, date=80, notool=32), budget_s=70.0,
                      min_steps=30)
            if changes.get("reward") == "naive":
                cfg = replace(cfg, **NAIVE_QUICK, tasks=TaskMix(**NAIVE_TASKS))
        return replace(cfg, **changes)
