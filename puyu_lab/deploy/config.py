"""The deploy stage's config: which model, the quantization ladder and how much it is measured on,
sized per profile."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..profiles import as_profile
from .quantize import LADDER


@dataclass
class DeployConfig:
    model: str = "model/sft"  # model/sft, model/base, or the path of a HF model directory or a .gguf file
    levels: tuple[str, ...] = field(default_factory=lambda: tuple(LADDER))  # F32 is always made (the reference)
    n_tokens: int = 2048  # held-out tokens of corpus/clean the ladder is measured on
    n_ctx: int = 256  # the window each measurement sees
    decode_tokens: int = 64  # greedy tokens for the decode speed
    transformers: tuple[str, ...] | None = None  # transformers rows (None: all of measure.HF_VARIANTS)
    # held-out tasks each GGUF level answers greedily: this many self-cognition, sentiment and tool-choice items
    # each (tool choice: 2×) — the quick profile's sample budget (pipeline.task_items; the accuracy's interval shows it)
    tasks_per_kind: int = 8
    imatrix: bool = True  # also Q4_K_M / Q3_K_M / Q2_K quantized with an importance matrix (llama-imatrix)

    @classmethod
    def for_profile(cls, profile=None, **changes) -> "DeployConfig":
        """The profile's sizes (a name, a :class:`~puyu_lab.profiles.Profile` or ``None`` for the
        default), with ``changes`` on top."""
        name = as_profile(profile).name
        if name in ("full", "gpu"):  # more held-out text, the full preset's training context
            cfg = cls(n_tokens=8192, n_ctx=512, decode_tokens=128, tasks_per_kind=16)
        else:
            cfg = cls()
        for k in ("levels", "transformers"):
            if changes.get(k) is not None:
                changes[k] = tuple(changes[k])
        return replace(cfg, **changes)
