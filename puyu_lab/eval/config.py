"""The eval stage's config: how many documents per task, which models and GGUF levels, sized per profile."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..profiles import as_profile


@dataclass
class EvalConfig:
    # documents per choice / generation task: the quick profile's sample budget (each score's 95 % interval, drawn
    # on the bars, is what the smaller sample costs: ±18 points at 30 documents and 50 % accuracy)
    n: int = 30
    # the sentiment task's reviews: every balanced pair the held-out split holds (None), or at most this many. Two
    # one-token answers cost little, and at 30 reviews the check "SFT above base" was a coin flip (17/30 each)
    sentiment_n: int | None = None
    ppl_docs: int = 12  # held-out news articles for perplexity
    seed: int = 0
    models: tuple[str, ...] = ("model/base", "model/sft")  # model artifacts, named by their last part
    # evaluated too when the workspace has them (the preference and RL labs' models)
    optional_models: tuple[str, ...] = ("model/dpo", "model/orpo", "model/rl")
    # the shipped course assistant (the RL lab's policy) beside them, when the workspace has model/rl: GRPO's
    # before and after on the same tasks
    course: bool = True
    levels: tuple[str, ...] = ("Q4_K_M", "Q2_K")  # GGUF levels of model/sft, when the deploy lab has run
    batch_size: int = 8
    cache: bool = True  # lm-eval style request cache under <workspace>/cache/eval
    name: str = "eval/chain"  # the artifact written
    progress_bar: bool = True

    @classmethod
    def for_profile(cls, profile=None, **changes) -> "EvalConfig":
        """The profile's sizes (a name, a :class:`~puyu_lab.profiles.Profile` or ``None`` for the
        default), with ``changes`` on top."""
        name = as_profile(profile).name
        cfg = cls() if name == "quick" else cls(n=200, ppl_docs=40)
        for k in ("models", "levels", "optional_models"):
            if k in changes:
                changes[k] = tuple(changes[k])
        return replace(cfg, **changes)
