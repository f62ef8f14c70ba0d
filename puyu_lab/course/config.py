"""The course build's recipe: the chain's own stages, sized to train past the induction threshold.

One :class:`CourseConfig` holds every choice, so a build's manifest records exactly what made the
shipped model. The architecture is the quick preset (the learner's model is the same size, so the
two compare step for step); what differs is the data and the tokens:

- phase ``a`` (language): a small batch × context (B·C = 4 × 128 = 512; the threshold grows with
  √(B·C)), half copy-rich documents, a constant learning rate after warmup;
- phases ``copy-256``, ``copy-1k``, ``copy`` (induction): copy-rich documents only, random runs over a
  vocabulary that widens from 256 pieces to all of them (a copying head forms on few pieces, then carries
  over), the last until the copy probe passes or its tokens are spent;
- phase ``b`` (context): the full 256-token context and the quick batch, a third copy-rich, the
  rate decayed to zero;
- SFT: the chain's own mixture (self-cognition, sentiment, chit-chat, calculator and date tool
  calls), larger than the quick profile's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..pretrain.model import PRESETS, ModelPreset


@dataclass
class PhaseConfig:
    name: str
    block_size: int
    batch_size: int
    max_steps: int
    copy_share: float  # share of training tokens in copy-rich documents (1.0: no natural documents)
    lr_scheduler: str
    warmup_steps: int
    learning_rate: float  # AdamW (every parameter with optimizer "adamw"; embeddings' own rate with "muon")
    probe_every: int  # steps between copy probes (the curve in the manifest)
    optimizer: str = "adamw"  # the pretrain stage's "adamw" or "muon"
    weight_decay: float = 0.1  # "adamw" only
    muon_lr: float = 0.02  # "muon" only
    embedding_lr: float = 0.03  # "muon" only
    # stop the phase once the probe shows copying this strong (None: run every step)
    stop_gain: float | None = None
    stop_copied: float | None = None
    # the copy-rich kinds' weights (None: every kind alike; see :mod:`.copyrich`)
    copy_kinds: dict[str, float] | None = None
    # random runs drawn from this many ordinary pieces only (the probe's range starts at the same id; None: all)
    runs_pieces: int | None = None

    @property
    def tokens(self) -> int:
        return self.block_size * self.batch_size * self.max_steps


@dataclass
class CourseConfig:
    preset: ModelPreset = field(default_factory=lambda: PRESETS["quick"])
    data_profile: str = "full"  # the data stage's profile: every document the shipped sources hold
    phases: tuple[PhaseConfig, ...] = (
        # AdamW with decoupled weight decay, the recipe the threshold law was measured with. The first build ran
        # Muon at a constant 0.02 without decay: by 13.8 M tokens its matrices had grown ~40× (rms 0.8–1.0),
        # every attention head past the first layer had collapsed onto one position (entropy 0) and the probe
        # never moved (gain 0.1–0.4 nats/token, 0 % copied). AdamW at 2e-3 did no better: 20.2 M tokens
        # (39,500 steps), gain 0.16–0.25, 0 % copied; nor did AdamW at 7e-4 (the rate at which the lesson's copy
        # task forms its head on this width): 11.3 M tokens (22,000 steps), gain 0.03–0.16, 0 % copied. Half
        # copy-rich was too little: at step 22,000 the model read back a digit string it had just seen
        # (2.17 → 1.03 nats/token) but not a run of random pieces (8.52 → 8.56), and runs were one sixth of
        # the copy-rich half. Nor did copy-rich documents alone, runs weighted up (1.4 M tokens, gain < 0), nor runs
        # alone (1.1 M tokens): with 4,000 pieces to match, nothing formed. Runs over 256 pieces formed a copying
        # head within 500 steps of 32 × 64 (gain 2.1 nats/token on those pieces), and it carried over as the runs
        # widened: 1,024 pieces for 400 steps, then every piece — gain 1.2 nats/token on the full probe within 100
        # steps, 2.1 after 500 (the first copying any run of this model showed). So phase a ends at 22,000 steps
        # (the language it learnt is kept) and three copy phases follow, the runs' vocabulary widening, the last
        # with the other copy-rich kinds beside the runs, until the probe passes.
        PhaseConfig("a", block_size=128, batch_size=4, max_steps=22_000, copy_share=0.5,
                    lr_scheduler="constant_with_warmup", warmup_steps=200, learning_rate=7e-4,
                    probe_every=500, stop_gain=4.0, stop_copied=0.8),
        # each sub-vocabulary phase runs until its own pieces are copied (the probe over them), then the runs widen:
        # the first build widened after a fixed 600 + 400 steps, while copying on 256 pieces was still blunt (gain
        # 1.03), and the full phase then stayed at a gain of 1.4–2.2 for 1,300 steps
        PhaseConfig("copy-256", block_size=64, batch_size=32, max_steps=4_000, copy_share=1.0,
                    lr_scheduler="constant_with_warmup", warmup_steps=50, learning_rate=7e-4, probe_every=100,
                    stop_gain=4.0, stop_copied=0.8, copy_kinds={"runs": 1.0}, runs_pieces=256),
        PhaseConfig("copy-1k", block_size=64, batch_size=32, max_steps=4_000, copy_share=1.0,
                    lr_scheduler="constant_with_warmup", warmup_steps=20, learning_rate=7e-4, probe_every=100,
                    stop_gain=4.0, stop_copied=0.8, copy_kinds={"runs": 1.0}, runs_pieces=1024),
        PhaseConfig("copy", block_size=64, batch_size=32, max_steps=8_000, copy_share=1.0,
                    lr_scheduler="constant_with_warmup", warmup_steps=20, learning_rate=7e-4,
                    probe_every=100, stop_gain=4.0, stop_copied=0.8,
                    copy_kinds={"runs": 4.0, "span": 1.0, "digits": 1.0, "lookup": 1.0, "calculator": 0.5,
                                "dates": 0.5}),
        PhaseConfig("b", block_size=256, batch_size=8, max_steps=2_000, copy_share=0.33, lr_scheduler="cosine",
                    warmup_steps=50, learning_rate=1e-3, probe_every=250),
    )
    sft_scale: int = 4  # the quick SFT mixture's tool / date / no-tool examples × this
    sft_epochs: float = 2.0
    reading_examples: int = 2000  # reading-comprehension conversations (reviews only: the RAG lab asks about news)
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["phases"] = [asdict(p) for p in self.phases]
        return d

    def scaled(self, steps: int) -> "CourseConfig":
        """The same recipe with every phase cut to ``steps`` steps (a smoke run of the code path)."""
        from dataclasses import replace

        phases = tuple(replace(p, max_steps=steps, warmup_steps=min(p.warmup_steps, max(1, steps // 4)),
                               probe_every=max(1, steps // 2)) for p in self.phases)
        return replace(self, phases=phases, sft_scale=1, sft_epochs=0.02, reading_examples=20)
