"""The course build's recipe: the chain's own stages, sized to train past the induction threshold.

One :class:`CourseConfig` holds every choice, so a build's manifest records exactly what made the
shipped model. The architecture is the quick preset (the learner's model is the same size, so the
two compare step for step); what differs is the data and the tokens:

- phase ``a`` (language): a small batch × context (B·C = 4 × 128 = 512; the threshold grows with
  √(B·C)), half copy-rich documents, a constant learning rate after warmup;
- phases ``copy-256``, ``copy-1k``, ``copy`` (induction): random runs of token ids shown twice (as ids: see the
  comment below), their ids widening from 256 to 1,024 to all, the last beside the other copy-rich kinds and
  natural text, each until the copy probe passes on its ids at every run length or its tokens are spent;
- phase ``b`` (context): the full 256-token context and the quick batch, 40 % copy-rich, the rate decayed
  to zero;
- SFT: the chain's own mixture (self-cognition, sentiment, chit-chat, calculator and date tool
  calls) and reading comprehension, larger than the quick profile's, at a lower rate and a longer context.
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
        # alone (1.1 M tokens). Phase a ends at 22,000 steps (the language it learnt is kept).
        PhaseConfig("a", block_size=128, batch_size=4, max_steps=22_000, copy_share=0.5,
                    lr_scheduler="constant_with_warmup", warmup_steps=200, learning_rate=7e-4,
                    probe_every=500, stop_gain=4.0, stop_copied=0.8),
        # Then copying, from random runs written as token ids. Every earlier copy phase wrote the runs as text (pieces
        # joined, then tokenized again), and text re-tokenizes into other, longer pieces: the runs the model saw were
        # not the probe's runs, and their two showings need not match token for token (40 M tokens of such phases:
        # at best a gain of 2.2 nats/token, 0 % copied). As ids, runs of one length (32, the probe's) taught a head
        # that looks back 32 positions within 200 steps (gain 8.1 at length 32, below 0 at 24 and 40), so the runs'
        # length varies (8–48) and the probe's targets must hold at 24 and 40 tokens too (build.OTHER_LENGTHS).
        # With lengths varying, runs as ids beside natural text and the other kinds (16 × 128, 7e-4) gave nothing in
        # 1,400 steps (gain 0.02), and runs alone over all pieces nothing in 350; over the first 256 ids alone the
        # gain on those ids crept up (0.25 by step 600 at 7e-4; 0.15 by 1,200 at 2e-3). So the curriculum widens the
        # runs' ids from 256 to 1,024 to all, each phase until its own ids are copied at every length.
        PhaseConfig("copy-256", block_size=128, batch_size=16, max_steps=6_000, copy_share=1.0,
                    lr_scheduler="constant_with_warmup", warmup_steps=50, learning_rate=7e-4, probe_every=100,
                    stop_gain=4.0, stop_copied=0.8, copy_kinds={"token_runs": 1.0}, runs_pieces=256),
        PhaseConfig("copy-1k", block_size=128, batch_size=16, max_steps=4_000, copy_share=1.0,
                    lr_scheduler="constant_with_warmup", warmup_steps=20, learning_rate=7e-4, probe_every=100,
                    stop_gain=4.0, stop_copied=0.8, copy_kinds={"token_runs": 1.0}, runs_pieces=1024),
        PhaseConfig("copy", block_size=128, batch_size=16, max_steps=4_000, copy_share=0.6,
                    lr_scheduler="constant_with_warmup", warmup_steps=20, learning_rate=7e-4,
                    probe_every=100, stop_gain=4.0, stop_copied=0.8,
                    copy_kinds={"token_runs": 3.0, "span": 1.0, "digits": 1.0, "lookup": 1.0, "calculator": 1.0,
                                "dates": 1.0}),
        # the full context and the quick batch, the rate decayed to zero; every copy-rich kind stays in the mix so
        # the head formed above is kept
        PhaseConfig("b", block_size=256, batch_size=8, max_steps=2_000, copy_share=0.4, lr_scheduler="cosine",
                    warmup_steps=50, learning_rate=5e-4, probe_every=250,
                    copy_kinds={"token_runs": 2.0, "span": 1.0, "digits": 1.0, "lookup": 1.0, "calculator": 1.0,
                                "dates": 1.0}),
    )
    sft_scale: int = 4  # the quick SFT mixture's tool / date / no-tool examples × this
    sft_epochs: float = 2.0
    # the fine-tune's rate and length. The first course assistant took the chain's (2e-3, 256 tokens): its copy
    # gain fell from the base's 8.3 to 1.6 nats/token, and every date conversation (the two tools' schemas in the
    # system prompt: 305 tokens at the median) lost its final answer to the cut at 256 — it called add_days right
    # and then called it again instead of answering (1 of 40 held-out dates), while arithmetic, 262 tokens at the
    # median, was 38 of 40. RoPE has no position table: the fine-tune itself trains the positions past 256.
    sft_learning_rate: float = 5e-4
    sft_max_length: int = 384
    # English date phrasings beside the chain's (SFTDataSettings.date_questions): with only "What date is N days
    # after D?", the assistant keyed on the word "date" and called the calculator on all 13 held-out "Which day
    # comes N days after D?" (26/40 dates); GRPO could not bridge it — no sampled answer to a "day" question ever
    # called add_days, so no group had a right answer to strengthen. The held-out and RL phrasings stay apart
    # (contracts.tasks; tests/rl/test_tasks.py)
    sft_date_questions: tuple[str, ...] = ("What day is {days} days after {date}?",
                                           "{days} days after {date}, what day will it be?",
                                           "Which date falls {days} days after {date}?",
                                           "Tell me the date {days} days from {date}.")
    # reading-comprehension conversations (:mod:`.reading`) from the train split, each source's share. With 2,000 from
    # reviews alone, the assistant's free-form answer held the gold quantity on 34 of 60 RAG test questions (news):
    # it copied the sentence round the blank and wrote a near miss in it ("６００元" for ５００元) — reviews write
    # ASCII digits, the news full-width ones and Chinese numerals. The lab asks about held-out news only.
    reading_examples: int = 3000
    reading_mix: tuple[tuple[str, float], ...] = (("news-zh", 0.5), ("reviews-zh", 0.5))
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
