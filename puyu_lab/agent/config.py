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
    seed: int = 0
    protocol: str = "internlm2"  # internlm2 | react | openai
    max_turns: int = 3
    max_new_tokens: int = 96
    direct: bool = True  # also ask each task without the tool
    levels: tuple[str, ...] = ("Q4_K_M",)  # GGUF levels of model/sft also run as agents, when the deploy lab has run

    @classmethod
    def for_profile(cls, profile=None, **changes) -> "AgentConfig":
        """The profile's sizes (a name, a :class:`~puyu_lab.profiles.Profile` or ``None`` for the
        default), with ``changes`` on top."""
        name = as_profile(profile).name
        cfg = cls() if name == "quick" else cls(n_tasks=100)
        for k in ("levels", "kinds"):
            if k in changes:
                changes[k] = tuple(changes[k])
        return replace(cfg, **changes)
