"""The lesson "watch in-context learning appear": a tiny model trained on random runs shown twice, long enough
to see the induction cliff on two CPU cores.

The learner's quick model never copies (its run is far short of N ≈ 10^5.7·√(B·C) tokens), so the lesson
trains a model where the cliff comes within a couple of minutes: 2 layers, 64 wide, a 256-token vocabulary,
sequences of random tokens in which a run of 16–32 tokens is shown twice (the run's length varies, so the
distance to copy from varies: attention by position alone cannot solve it, only by content). The second
showing's loss stays at the uniform log(256) = 5.55 nats for hundreds of steps, then falls to near zero
within a few hundred more — the phase change of Olsson et al. (2022), the formation of an induction head.
On a 2-core CPU the plateau held for about a thousand steps and then the loss fell off its cliff, with a
clear induction head in layer 1 (the figures: README, the course model, "The lesson"). With the course build's
4,000-token vocabulary the same model showed no cliff in as many steps: the tiny vocabulary is what makes it fit.

Why by hand, not the pretrain stage's Trainer: the data are token ids made on the fly (no corpus artifact,
no tokenizer, no checkpoints), and the step is so small that a dataset, collator and callbacks would be
most of it. The probe is the model layer's own (:func:`puyu_lab.models.probes.induction_scores`) at the end.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

from ..errors import InputError
from ..events import Emitter, StopFlag


@dataclass
class LessonConfig:
    vocab_size: int = 256
    run_min: int = 16  # each sequence's repeated run: this many tokens …
    run_max: int = 32  # … up to this many (the probe's runs are run_max long)
    layers: int = 2
    hidden_size: int = 64
    heads: int = 4
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 0.1
    budget_s: float = 150.0  # the quick budget, in seconds: the lesson keeps lab 02 short on a 2-core CPU
    probe_every: int = 50  # steps between measurements of the first and second showing
    # stop this many steps after the cliff (the second showing below half the first's cost): the fall is shown
    after_cliff: int = 300
    max_steps: int | None = None  # a fixed number of steps instead of the budget (tests, reproducing a curve)
    seed: int = 0

    def __post_init__(self):
        if not 2 <= self.run_min <= self.run_max:
            raise InputError(f"LessonConfig: run_min={self.run_min}, run_max={self.run_max}: "
                             f"need 2 ≤ run_min ≤ run_max",
                             zh=f"LessonConfig：run_min={self.run_min}，run_max={self.run_max}："
                                f"需要满足 2 ≤ run_min ≤ run_max")
        if self.vocab_size < 16:
            raise InputError(f"LessonConfig.vocab_size={self.vocab_size}: use at least 16 tokens",
                             zh=f"LessonConfig.vocab_size={self.vocab_size}：词表至少要有 16 个词元")

    @property
    def context(self) -> int:
        return 2 * self.run_max + 1


@dataclass
class LessonResult:
    config: dict
    curve: list[dict] = field(default_factory=list)  # {"step", "seconds", "tokens", "first_nll", "second_nll"}
    steps: int = 0
    seconds: float = 0.0
    cliff_step: int | None = None  # the first measurement where the second showing lost half its cost
    stopped: bool = False
    induction: dict | None = None  # induction_scores of the trained model
    machine: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _batch(cfg: LessonConfig, n: int, gen, *, fixed: bool = False):
    """``n`` sequences of random tokens; a run of k ∈ [run_min, run_max] tokens ends each sequence, shown
    twice (``fixed``: k = run_max, the probe's layout)."""
    import torch

    x = torch.randint(0, cfg.vocab_size, (n, cfg.context), generator=gen)
    for i in range(n):
        k = cfg.run_max if fixed else int(torch.randint(cfg.run_min, cfg.run_max + 1, (), generator=gen))
        s = cfg.context - 2 * k
        x[i, s + k:] = x[i, s:s + k]
    return x


def _measure(model, x, k: int) -> tuple[float, float]:
    """Mean NLL per token of the first and the second showing of the final run of length ``k``."""
    import torch

    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=x).logits.float(), -1)[:, :-1]
        nll = -lp.gather(2, x[:, 1:, None])[..., 0]  # nll[:, j] is token j + 1's
    T = x.shape[1]
    first = nll[:, T - 2 * k: T - k - 1].mean().item()  # tokens T-2k+1 … T-k-1 of the first showing
    second = nll[:, T - k:].mean().item()  # the second showing, after its first token
    return first, second


class _Scored:
    """What :func:`~puyu_lab.models.probes.induction_scores` reads of a model-layer model."""

    def __init__(self, hf, vocab: int):
        self.model, self._vocab, self.prefix_token_id = hf, vocab, 0

    def vocab_size(self) -> int:
        return self._vocab


def run(cfg: LessonConfig | None = None, *, on_event=None, stop: StopFlag | None = None) -> LessonResult:
    """Train the lesson's model until the cliff is behind it, its budget is spent or ``stop`` is set;
    emits ``lesson`` events (one per measurement) and ``done``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..models.probes import induction_scores
    from ..numerics import machine

    cfg = cfg or LessonConfig()
    em = Emitter("lesson", on_event)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    probe_gen = torch.Generator().manual_seed(cfg.seed + 1)
    probe_x = _batch(cfg, 64, probe_gen, fixed=True)  # the same held-out sequences at every measurement
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=4 * cfg.hidden_size,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
        max_position_embeddings=max(256, cfg.context), rope_theta=10_000.0, tie_word_embeddings=False,
        attn_implementation="sdpa"))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.95))
    res = LessonResult(config=asdict(cfg), machine=machine())
    em.emit("start", uniform_nll=round(math.log(cfg.vocab_size), 3), context=cfg.context,
            batch_size=cfg.batch_size, budget_s=cfg.budget_s if cfg.max_steps is None else None,
            max_steps=cfg.max_steps)
    t0, step = time.perf_counter(), 0

    def point() -> dict:
        model.eval()
        first, second = _measure(model, probe_x, cfg.run_max)
        model.train()
        p = {"step": step, "seconds": round(time.perf_counter() - t0, 2),
             "tokens": step * cfg.batch_size * cfg.context, "first_nll": round(first, 3),
             "second_nll": round(second, 3)}
        res.curve.append(p)
        if res.cliff_step is None and second < 0.5 * first:
            res.cliff_step = step
        em.emit("lesson", **p, cliff_step=res.cliff_step)
        return p

    point()
    model.train()
    while True:
        if stop is not None and stop.is_set():
            res.stopped = True
            break
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        if cfg.max_steps is None and time.perf_counter() - t0 >= cfg.budget_s:
            break
        x = _batch(cfg, cfg.batch_size, gen)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % cfg.probe_every == 0:
            point()
            if cfg.max_steps is None and res.cliff_step is not None and step >= res.cliff_step + cfg.after_cliff:
                break
    res.steps, res.seconds = step, round(time.perf_counter() - t0, 2)
    if not res.curve or res.curve[-1]["step"] != step:
        point()
    model.eval()
    res.induction = induction_scores(_Scored(model, cfg.vocab_size), length=cfg.run_max)
    em.emit("done", steps=step, seconds=res.seconds, cliff_step=res.cliff_step, stopped=res.stopped,
            best_head=res.induction["best"])
    return res
