"""Profiles: one setting that sizes every stage of the chain.

``quick``  CPU, a tiny model; its training stages run on wall-clock budgets (the default).
``full``   CPU, all the data and a larger tiny model: better quality, much longer runs.
``gpu``    a real chat model (e.g. InternLM2-chat-1.8B) from a local path or the hub, QLoRA;
           requires CUDA and says so clearly without it.

No profile states a time: the times are measured, per lab, in the table ``make chain`` writes
(``<workspace>/chain/report.html``).

Chosen by a notebook's ``parameters`` cell or ``$PUYU_LAB_PROFILE``. Each stage reads its own
section (``profile.data`` …); a stage adds its section here when it lands.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from .errors import PuyuError


class ProfileError(PuyuError):
    pass


@dataclass(frozen=True)
class DataSettings:
    # documents taken from each built-in source (None = all of it)
    max_docs_per_source: int | None = 4000
    heldout_fraction: float = 0.05
    seed: int = 0


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    device: str  # "cpu" or "cuda"
    data: DataSettings = field(default_factory=DataSettings)
    base_model: str | None = None  # gpu profile: a local path or hub id of a real chat model
    embedding_model: str | None = None  # gpu profile: a local embedding-model directory for the RAG lab (else trained)
    description_zh: str = ""  # the description in Chinese (what a zh learner reads)

    def describe(self, lang: str = "en") -> str:
        """The description in ``lang`` (zh or en)."""
        return self.description_zh if lang.startswith("zh") and self.description_zh else self.description

    def with_data(self, **changes) -> "Profile":
        return replace(self, data=replace(self.data, **changes))


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick", "CPU, a tiny model; the training stages run on wall-clock budgets "
                 "(the times: the table `make chain` writes)", "cpu",
        data=DataSettings(max_docs_per_source=4000),
        description_zh="CPU，一个很小的模型；各训练阶段按时间预算运行（实测用时见 `make chain` 生成的表）",
    ),
    "full": Profile(
        "full", "CPU, all the data and a larger tiny model; runs far longer than quick "
                "(the times: the table `make chain` writes)", "cpu",
        data=DataSettings(max_docs_per_source=None),
        description_zh="CPU，全部数据和一个大一些的小模型；比 quick 慢得多（实测用时见 `make chain` 生成的表）",
    ),
    "gpu": Profile(
        "gpu", "CUDA GPU, a real chat model (InternLM2-chat-1.8B) fine-tuned with QLoRA", "cuda",
        data=DataSettings(max_docs_per_source=None),
        description_zh="CUDA GPU，用 QLoRA 微调一个真正的对话模型（InternLM2-chat-1.8B）",
        base_model=os.environ.get("PUYU_LAB_GPU_MODEL", "internlm/internlm2-chat-1_8b"),
        embedding_model=os.environ.get("PUYU_LAB_EMBEDDING_MODEL") or None,
    ),
}

DEFAULT = "quick"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def get_profile(name: str | None = None, *, check: bool = True) -> Profile:
    """The profile ``name`` (default: ``$PUYU_LAB_PROFILE`` or ``quick``).

    With ``check`` a profile that needs hardware this machine lacks fails here, clearly,
    instead of half-way through a lab.
    """
    name = (name or os.environ.get("PUYU_LAB_PROFILE") or DEFAULT).strip().lower()
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}",
                           zh=f"没有配置档 {name!r}；可选：{', '.join(PROFILES)}")
    profile = PROFILES[name]
    if check and profile.device == "cuda" and not cuda_available():
        raise ProfileError(
            "the 'gpu' profile needs a CUDA GPU and a CUDA build of torch, and this machine has none "
            "(torch.cuda.is_available() is False). Use profile 'quick' or 'full' here, or run the "
            "labs on a GPU machine (see README: Running on a GPU).",
            zh="'gpu' 配置档需要一块 CUDA GPU 和 CUDA 版的 torch，而这台机器没有"
               "（torch.cuda.is_available() 为 False）。在这里请用 'quick' 或 'full' 配置档，"
               "或者到有 GPU 的机器上运行实验（见 README：Running on a GPU）。",
        )
    return profile


def as_profile(profile: "str | Profile | None" = None) -> Profile:
    """``profile`` as a :class:`Profile`: a name (``None``: the default), or a profile itself.

    For sizing a stage's config (``XConfig.for_profile``): no hardware check here — the stage
    that needs CUDA checks when it runs."""
    if isinstance(profile, Profile):
        return profile
    return get_profile(profile, check=False)


def overrides(args, *fields: str) -> dict:
    """The config fields a command line set: ``fields`` whose argparse value is not ``None``
    (``--n-tokens`` → ``n_tokens``), ready for ``XConfig.for_profile(profile, **changes)``."""
    return {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
