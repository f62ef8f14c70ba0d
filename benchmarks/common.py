"""What several benchmarks start from: a workspace with the real corpora cleaned, the quick tokenizer and a
quick-preset base model pretrained for a few steps (real tokens and logits, minutes on 2 cores)."""
from __future__ import annotations

from dataclasses import replace


def tiny_base(ws, steps: int):
    """Prepare news-zh + reviews-zh (1,000 documents each), train the quick tokenizer, pretrain the quick preset for
    ``steps`` steps into ``ws``; the quick pretraining config."""
    from puyu_lab.data.pipeline import prepare
    from puyu_lab.data.sources import load_sources
    from puyu_lab.pretrain.train import PretrainConfig, pretrain, train_tokenizer
    from puyu_lab.profiles import get_profile

    cfg = replace(PretrainConfig.for_profile(get_profile("quick")), budget_s=None)  # fixed steps: reproducible
    prepare(raw=load_sources(["news-zh", "reviews-zh"], limit_per_source=1000), show_progress=False).export(ws)
    train_tokenizer(ws, cfg.preset.vocab_size)
    pretrain(ws, replace(cfg, max_steps=steps, eval_every=steps, save_every=steps, sample_every=0, progress_bar=False))
    return cfg


AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}  # what an AVX2 laptop gets, on a bigger CPU


def cpu_kinds() -> list[tuple[str, dict]]:
    """(label, environment) for this CPU as it is and with the AVX2 paths forced: a child process per kind (the
    numeric path is chosen once per process)."""
    import os

    native = {k: v for k, v in os.environ.items() if k not in AVX2_ENV}
    return [("native", native), ("forced AVX2", {**native, **AVX2_ENV})]
