"""The preference stage's config: method (DPO / ORPO), full or LoRA, trl's hyper-parameters and the
pair mixture, sized per profile."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..profiles import as_profile

METHODS = ("dpo", "orpo")
QUICK_BUDGET_S = 25.0  # the quick profile's DPO loop, on any CPU (the steps it buys are the machine's)
ORPO_QUICK_BUDGET_S = 12.0  # the preference lab's ORPO run (its 30-step recipe), likewise
# the quick floors: a CPU too slow for these steps inside the budget makes them anyway (and says so). On an SFT
# model that made only its own floor, 30 DPO steps lifted held-out pair accuracy (lab 04's check: any lift; the
# figures: README, Profiles, "Floors"); ORPO's check asks only that it ran. Steps, not seconds: the same on every CPU
QUICK_MIN_STEPS = 30
ORPO_QUICK_MIN_STEPS = 15
TUNING = ("full", "lora")


@dataclass(frozen=True)
class PairSettings:
    identity_per_prompt: int = 2  # rejected identities per self-cognition question
    sentiment: int = 160  # training pairs from corpus/clean's labelled reviews (balanced)
    tool: int = 200  # training pairs from sft/data's tool conversations (calculator and dates)
    notool: int = 120  # training pairs from sft/data's no-tool conversations (direct answer vs a needless call)
    heldout_sentiment: int = 60  # from corpus/clean's held-out reviews
    heldout_tool: int = 90  # from sft/data's held-out arithmetic and date tasks (all of them in quick)
    custom_heldout_fraction: float = 0.1
    seed: int = 0


@dataclass
class PrefConfig:
    method: str = "dpo"
    model: str = "model/sft"  # the policy starts here; DPO's reference model is a frozen copy of it
    tuning: str = "full"  # a 5 M-parameter model: full is cheap; LoRA on real models (gpu profile)
    beta: float = 0.1  # DPO: how far from the reference; ORPO: the odds-ratio term's weight (λ)
    loss_type: str = "sigmoid"  # DPO's loss (trl's loss_type: sigmoid, ipo, …)
    learning_rate: float = 1e-4
    epochs: float = 1.0
    max_steps: int = -1
    # a wall-clock budget for trl's training loop, in seconds (None: exactly epochs / max_steps): the run buys as
    # many steps as fit on this machine, its schedule complete (puyu_lab.budget)
    budget_s: float | None = None
    # a budgeted run's floor: at least these steps however slow the machine (the fewest on which the lab's checks
    # were measured to hold; None: the recipe's steps). Fixed-step runs ignore it.
    min_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 256  # the SFT model's context
    lora_r: int = 16
    lora_alpha: int = 32
    # trl's evaluation on the held-out pairs (rewards, margins, accuracy): seconds each on a CPU, so once, at the
    # end of quick's 70 steps (the panel's before / after bars are the stage's own scoring of the same pairs)
    eval_every: int = 70
    log_every: int = 2
    seed: int = 0
    bf16: bool | None = None  # None: chosen per machine (puyu_lab.numerics)
    pairs: PairSettings = field(default_factory=PairSettings)
    custom_pairs: str | None = None  # a JSONL file of your own pairs
    progress_bar: bool = True

    def __post_init__(self):
        from ..errors import InputError

        if self.method not in METHODS:
            raise InputError(f"method={self.method!r}: choose one of {', '.join(METHODS)}",
                             zh=f"method={self.method!r}：可选 {', '.join(METHODS)}")
        if self.tuning not in TUNING:
            raise InputError(f"tuning={self.tuning!r}: choose one of {', '.join(TUNING)}",
                             zh=f"tuning={self.tuning!r}：可选 {', '.join(TUNING)}")

    @property
    def output(self) -> str:
        """The artifact this run writes: ``model/dpo`` or ``model/orpo``."""
        return f"model/{self.method}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PrefConfig":
        d = dict(d)
        if "pairs" in d:
            d["pairs"] = PairSettings(**d["pairs"])
        return cls(**d)

    @classmethod
    def for_profile(cls, profile=None, **changes) -> "PrefConfig":
        """The profile's sizes (a name, a profile or ``None``: the default), with ``changes`` on top."""
        name = as_profile(profile).name
        if name == "gpu":  # a real chat model: LoRA DPO, XTuner's internlm2_chat_1_8b_dpo recipe's sizes
            cfg = cls(tuning="lora", learning_rate=5e-6, batch_size=2, grad_accum=8, max_length=2048, lora_r=64,
                      lora_alpha=16, eval_every=50, pairs=PairSettings(sentiment=1000, tool=800, heldout_sentiment=200,
                                                                        heldout_tool=100))
        elif name == "full":
            cfg = cls(epochs=2.0, pairs=PairSettings(sentiment=800, tool=600, heldout_sentiment=200, heldout_tool=100))
        else:  # quick: a wall-clock budget, so the lab takes the same minutes on every CPU
            cfg = cls(budget_s=QUICK_BUDGET_S, min_steps=QUICK_MIN_STEPS)
        return replace(cfg, **changes)
