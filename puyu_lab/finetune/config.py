"""The fine-tune stage's config: method, base, LoRA, schedule and the data mixture, sized per profile."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..profiles import as_profile
from .data import SFTDataSettings

# LoRA targets are found in the model itself (finetune.modeling.linear_targets): every linear layer by its
# own name — q_proj … down_proj in Llama / Qwen2, wqkv / wo / w1–w3 in InternLM2 — as peft's "all-linear"
# does, so no architecture's names are assumed here.
ALL_LINEAR = "all-linear"
METHODS = ("full", "lora", "qlora")
QUICK_BUDGET_S = 65.0  # the quick profile's SFT loop, on any CPU (the steps it buys are the machine's)
# the quick floor: a CPU too slow for these steps inside the budget makes them anyway (and says so). On a base that
# made only its own floor (200 steps), lab 03's checks failed at 250 steps (self-cognition 1/12) and 320 (10/12,
# answers that run on) and held at 400 (12/12): steps, not seconds, so the same on every CPU
QUICK_MIN_STEPS = 420
# the quick rate. At 2e-3 the tiny model hopped between answering every prompt with one frequent answer and
# another: the landing CI's run named itself in 12/12, 0/12, 11/12 held-out answers at steps 145, 292, 449, and the
# same run on the same base cut at 420 steps answered all 12 with 负面 (0/12). At 1e-3 and 5e-4: 12/12 on that base
# (AMX paths), and 12/12 at 5e-4 on the AVX2 paths' base
QUICK_LEARNING_RATE = 5e-4
# the quick mixture's sentiment instructions, each three times. Their answer is one token: among long tool
# conversations in a loss averaged over tokens they weigh next to nothing, and the quick model answered 200 fresh
# reviews at chance (51–59 % in six runs on both paths, with both rates). Three copies: 68 % (AMX paths) and 63.5 %
# (AVX2 paths), the held-out self-cognition still 12/12 on both — a sentiment-only fine-tune of the same steps: 68 %
QUICK_SENTIMENT_REPEAT = 3


@dataclass
class SFTConfig:
    # full fine-tuning by default: on a 5 M-parameter base it is cheap (≈80 MB of training state)
    # and learns far faster than LoRA, whose frozen tiny base gives it little to build on. On real
    # models (gpu profile) QLoRA is the recipe.
    method: str = "full"
    base: str = "model/base"  # an artifact name, or (gpu profile) a model directory / hub id
    lora_r: int = 64
    lora_alpha: int = 64
    lora_dropout: float = 0.0
    target_modules: str | tuple[str, ...] = ALL_LINEAR  # or explicit module names
    # LoRA on the output layer too: a base model never produced the chat tokens (<|im_end|> …), and
    # without adapting it a tiny model learns them slower (held-out loss after 60 LoRA steps on the quick
    # base, leak-free split: 4.70 without, 3.65 with)
    lora_output_layer: bool = True
    # run the model directory's own code (InternLM2's hub checkpoints ship modelling and tokenizer code);
    # off unless you trust the checkpoint's source
    trust_remote_code: bool = False
    # also train these whole (peft modules_to_save): the embeddings and output layer, where the chat
    # tokens a base model never saw (<|im_start|>, <|im_end|> …) live
    modules_to_save: tuple[str, ...] = ()
    learning_rate: float = 2e-3
    # the recipe: 2 passes (680 steps in quick) — a fixed-step run's length, a budgeted run's shape and ceiling
    epochs: float = 2.0
    max_steps: int = -1
    # a wall-clock budget for the training loop, in seconds (None: exactly epochs / max_steps). With a budget
    # the run measures its first steps and buys as many as fit, its schedule complete inside the budget on any
    # machine; epochs / max_steps, warmup_ratio, sample_every and save_every then give the recipe's shape
    budget_s: float | None = None
    # a budgeted run's floor: at least these steps however slow the machine (the fewest on which the lab's checks
    # were measured to hold; None: the recipe's steps). Fixed-step runs ignore it.
    min_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 256  # the base model's training context (pretrain block_size)
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    eval_fraction: float = 0.04
    sample_every: int = 200  # evaluation prompts + held-out loss (their time counts in the budget)
    sample_tokens: int = 40
    save_every: int = 100
    log_every: int = 5
    # bf16 autocast: True / False, or None = chosen per machine (puyu_lab.numerics: bf16 where native
    # and faster, fp32 on CPUs that emulate it, fp16 on GPUs before Ampere)
    bf16: bool | None = None
    seed: int = 0
    data: SFTDataSettings = field(default_factory=SFTDataSettings)
    custom_data: str | None = None
    progress_bar: bool = True

    def __post_init__(self):
        if self.method not in METHODS:
            from ..errors import InputError

            raise InputError(f"method={self.method!r}: choose one of {', '.join(METHODS)}",
                             zh=f"method={self.method!r}：可选 {', '.join(METHODS)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        d["modules_to_save"] = list(self.modules_to_save)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SFTConfig":
        d = dict(d)
        if "data" in d:
            d["data"] = SFTDataSettings(**d["data"])
        for k in ("target_modules", "modules_to_save"):
            if k in d and not isinstance(d[k], str):
                d[k] = tuple(d[k])
        return cls(**d)

    @classmethod
    def for_profile(cls, profile=None, **changes) -> "SFTConfig":
        """The profile's sizes (a name, a :class:`~puyu_lab.profiles.Profile` or ``None`` for the
        default), with ``changes`` on top."""
        return replace(_profile_recipe(as_profile(profile)), **changes)


def _profile_recipe(profile) -> SFTConfig:
    name = profile.name
    if name == "full":
        return SFTConfig(epochs=4, data=SFTDataSettings(dialogs_en=None, sentiment_max=1500, tool_examples=800,
                                                       tool_heldout=100))
    if name == "gpu":  # a real chat model, QLoRA — the InternLM camp's 个人小助手 recipe
        return SFTConfig(method="qlora", base=getattr(profile, "base_model", None) or "internlm/internlm2-chat-1_8b",
                         lora_r=64, lora_alpha=16, lora_dropout=0.1, learning_rate=2e-4, epochs=3, batch_size=4,
                         grad_accum=4, max_length=2048, sample_every=100, save_every=200,
                         data=SFTDataSettings(dialogs_en=None, sentiment_max=1500, tool_examples=800, tool_heldout=100))
    # quick: a wall-clock budget, so the lab takes the same minutes on every CPU (the steps it buys are shown)
    return SFTConfig(budget_s=QUICK_BUDGET_S, min_steps=QUICK_MIN_STEPS, learning_rate=QUICK_LEARNING_RATE,
                     data=SFTDataSettings(sentiment_repeat=QUICK_SENTIMENT_REPEAT))

