"""The pretrain stage's config: the model preset, batch, optimizer and schedule, sized per profile."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..profiles import as_profile
from .model import PRESETS, ModelPreset

PROMPTS = ["中国", "今天", "这本书", "The "]
QUICK_BUDGET_S = 70.0  # the quick profile's pretraining loop, on any CPU (the steps it buys are the machine's)
# the quick floor: a CPU too slow to make these steps inside the budget makes them anyway (and says so). The fewest
# steps on which lab 02's check (held-out loss −30 %) holds with margin: shorter full schedules missed it or passed
# narrowly (the figures: README, Profiles, "Floors"). Steps, not seconds: the same on every CPU. `make chain-floors`
# runs every lab at its floors
QUICK_MIN_STEPS = 200


@dataclass
class PretrainConfig:
    preset: ModelPreset = field(default_factory=lambda: PRESETS["quick"])
    # small batches, many updates: on this budget (~1 M tokens) more updates per token learn faster
    batch_size: int = 8
    grad_accum: int = 1
    # "muon": Muon for the decoder's weight matrices, AdamW for embeddings, head and norms (see optim.py);
    # "adamw": AdamW for everything, the classic recipe; on the quick run its held-out loss falls less than with
    # Muon (`make bench` prints both: bench_pretrain, "what the optimizer buys")
    optimizer: str = "muon"
    learning_rate: float = 4e-3  # AdamW: the output head and norms (with "adamw": every parameter)
    muon_lr: float = 0.03  # Muon: the attention and MLP matrices
    embedding_lr: float = 0.05  # AdamW: the input embeddings
    warmup_steps: int = 30
    max_steps: int = 400
    # the Trainer's schedule after the warmup: "cosine" decays to zero at the end; a staged recipe's early
    # phase holds its rate ("constant_with_warmup") and a later phase decays it
    lr_scheduler: str = "cosine"
    # a wall-clock budget for the training loop, in seconds (None: exactly max_steps). With a budget the run
    # measures its first steps, buys as many as fit (evaluations, samples and checkpoints paid for) and
    # completes its schedule inside the budget on any machine; max_steps, warmup_steps, eval_every,
    # sample_every and save_every then give the recipe's shape: its warmup share and how many of each.
    budget_s: float | None = None
    # a budgeted run's floor: it makes at least these steps however slow the machine (the fewest on which the
    # lab's checks were measured to hold; None: the recipe's max_steps). Fixed-step runs ignore it.
    min_steps: int | None = None
    weight_decay: float = 0.1  # "adamw" only; the Muon recipe trains without decay
    eval_every: int = 50
    eval_blocks: int = 48
    sample_every: int = 100
    save_every: int = 100
    log_every: int = 5
    # bf16 autocast: True / False, or None = chosen per machine (puyu_lab.numerics: bf16 only where
    # it is native and measured faster — AMX / AVX512-BF16 CPUs, Ampere+ GPUs; fp32 on AVX2, where
    # bf16 is emulated and many times slower: `make bench`, bench_pretrain's numeric paths). Muon's Newton–Schulz
    # dtype follows the same choice.
    bf16: bool | None = None
    seed: int = 0
    prompts: tuple[str, ...] = tuple(PROMPTS)
    sample_tokens: int = 32
    progress_bar: bool = True

    def __post_init__(self):
        if self.optimizer not in ("muon", "adamw"):
            from ..errors import InputError

            raise InputError(f"optimizer={self.optimizer!r}: choose 'muon' (Muon + AdamW, the default) or 'adamw'",
                             zh=f"optimizer={self.optimizer!r}：可选 'muon'（Muon + AdamW，默认）或 'adamw'")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.preset.block_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["prompts"] = list(self.prompts)
        return d

    @classmethod
    def for_profile(cls, profile=None, **changes) -> "PretrainConfig":
        """The profile's sizes (a name, a :class:`~puyu_lab.profiles.Profile` or ``None`` for the
        default), with ``changes`` on top."""
        return replace(_ladder(as_profile(profile).name), **changes)


def _ladder(name: str) -> PretrainConfig:
    if name == "full":
        return PretrainConfig(preset=PRESETS["full"], batch_size=8, learning_rate=3e-3, muon_lr=0.03,
                              warmup_steps=50, max_steps=1000, eval_every=100, sample_every=250, save_every=250)
    if name == "gpu":
        return PretrainConfig(preset=PRESETS["gpu"], batch_size=32, learning_rate=2e-3, muon_lr=0.02,
                              warmup_steps=200, max_steps=3000, eval_every=200, sample_every=500, save_every=500)
    # quick: a wall-clock budget, so the lab takes the same minutes on every CPU (the steps it buys are shown)
    return PretrainConfig(budget_s=QUICK_BUDGET_S, min_steps=QUICK_MIN_STEPS)

