"""The agent stage's config: the model, protocol, turn and token limits, and how many held-out tasks,
sized per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..profiles import as_profile


@dataclass
class AgentConfig:
    model: str = "model/sft"
    n_tasks: int | None = 40  # held-out tasks of each kind (None: all of them)
    kinds: tuple[str, ...] = ("arithmetic", "date", "notool")  # agent.evaluate.KINDS
    constrained: bool = True  # also run the tool tasks with calls decoded under the tools' schemas
    # the constrained run's tool_choice (OpenAI's): "required" — each tool task's first turn is a call, so the run
    # measures the calls themselves (valid? the right arguments?) whatever the model's own urge to call;
    # "auto" — the model decides, as in the free-form run
    tool_choice: str = "required"
    seed: int = 0
    protocol: str = "internlm2"  # internlm2 | react | openai
    max_turns: int = 3
    max_new_tokens: int = 96
    direct: bool = True  # also ask each task without the tool
    levels: tuple[str, ...] = ("Q4_K_M",)  # GGUF levels of model/sft also run as agents, when the deploy lab has run
    # whose held-out tasks: "workspace" (this workspace's sft/data, the learner's fine-tune) or "course" (the shipped
    # course model's, asked in phrasings its fine-tune never used: contracts.tasks.*_UNSEEN_FORMS)
    tasks: str = "workspace"
    output: str = "agent/eval"  # the artifact the evaluation writes ("agent/eval-course" for the course assistant)

    def __post_init__(self):
        from ..errors import InputError

        if self.tasks not in ("workspace", "course"):
            raise InputError(f"tasks={self.tasks!r}: 'workspace' (sft/data) or 'course' (the course model's)",
                             zh=f"tasks={self.tasks!r}：可选 'workspace'（sft/data）或 'course'（课程模型自带的任务）")
        if not self.output.startswith("agent/"):
            raise InputError(f"output={self.output!r}: the agent stage writes artifacts named agent/…",
                             zh=f"output={self.output!r}：智能体阶段写出的产物都以 agent/… 命名")

    @classmethod
    def for_profile(cls, profile=None, **changes) -> "AgentConfig":
        """The profile's sizes (a name, a :class:`~puyu_lab.profiles.Profile` or ``None`` for the
        default), with ``changes`` on top."""
        name = as_profile(profile).name
        base = cls() if name == "quick" else cls(n_tasks=100)
        for k in ("levels", "kinds"):
            if k in changes:
                changes[k] = tuple(changes[k])
        return replace(base, **changes)
