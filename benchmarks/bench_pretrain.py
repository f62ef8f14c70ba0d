"""InternLM-Train stage: training throughput on this CPU.

1. What helps here: a plain PyTorch loop in fp32 vs bf16 autocast (same model, same data), and what
   the Muon + AdamW optimizer costs per step against AdamW alone.
2. The HF Trainer vs that plain loop (bf16 both) — the cost of the Trainer's machinery.
3. The Trainer with the TrainingPanel attached vs without — the panel must cost ≤ 3 %.
4. What the optimizer buys: the whole quick run with AdamW alone vs Muon + AdamW (held-out loss).
All rows train the quick profile's model on the same packed blocks with the trainer's optimizer
(Muon + AdamW) unless named, one after the other.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace

import numpy as np

STEPS = 24
WARM = 4


def plain_loop(arr, preset, bf16: bool, batch: int, compile: bool = False, threads: int | None = None,
               optimizer: str = "muon") -> float:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _loop(arr, preset, bf16, batch, compile, optimizer)
    finally:
        torch.set_num_threads(before)


def _loop(arr, preset, bf16: bool, batch: int, compile: bool, optimizer: str) -> float:
    import torch
    from transformers import LlamaForCausalLM

    from puyu_lab.pretrain.model import llama_config
    from puyu_lab.pretrain.optim import build_optimizer
    from puyu_lab.pretrain.train import PretrainConfig

    torch.manual_seed(0)
    m = LlamaForCausalLM(llama_config(preset))
    if compile:
        m.forward = torch.compile(m.forward)  # compiled during the warm-up steps, not timed
    opt = build_optimizer(m, PretrainConfig(preset=preset, optimizer=optimizer))  # the trainer's optimizer
    rng = np.random.default_rng(0)
    for i in range(WARM + STEPS):
        if i == WARM:
            t0 = time.perf_counter()
        x = torch.from_numpy(arr[rng.integers(0, len(arr), batch)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = m(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    return STEPS * batch * preset.block_size / (time.perf_counter() - t0)


def pack_shape(arr: np.ndarray, length: int) -> np.ndarray:
    flat = arr.reshape(-1)
    n = len(flat) // length
    return flat[: n * length].reshape(n, length)


def trainer_run(ws, cfg, panel: bool) -> float:
    from puyu_lab.pretrain.train import pretrain

    rates = []

    def listen(e):
        if e.kind == "log" and e["step"] > WARM:
            rates.append(e["tokens_per_s"])

    if panel:
        from puyu_lab.panels.training import TrainingPanel

        p = TrainingPanel()

        def on_event(e):
            p(e)
            listen(e)
    else:
        on_event = listen
    pretrain(ws, cfg, on_event=on_event)
    return rates[-1]


def optimizer_run(ws, cfg, optimizer: str) -> dict:
    """One whole quick pretraining run with ``optimizer``: what it learns in the lab's budget."""
    from puyu_lab.pretrain.train import pretrain

    t0 = time.perf_counter()
    pretrain(ws, replace(cfg, optimizer=optimizer, progress_bar=False, sample_every=0))
    m = ws.get("model/base").metrics
    names = {"adamw": "AdamW (all parameters)", "muon": "Muon + AdamW (the default)"}
    return {"name": names[optimizer], "first": m["eval_loss_first"], "last": m["eval_loss"],
            "fall": 1 - m["eval_loss"] / m["eval_loss_first"], "bpb": m["bits_per_byte"],
            "seconds": time.perf_counter() - t0}


def main() -> str:
    from puyu_lab.data.pipeline import load_corpus, prepare
    from puyu_lab.data.sources import load_sources
    from puyu_lab.pretrain.tokenizer import load_tokenizer
    from puyu_lab.pretrain.train import config_for_profile, pack, train_tokenizer
    from puyu_lab.profiles import get_profile
    from puyu_lab.workspace import Workspace

    cfg = config_for_profile(get_profile("quick"))
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(d)
        prepare(raw=load_sources(["news-zh"], limit_per_source=1500), show_progress=False).export(ws)
        tok = load_tokenizer(train_tokenizer(ws, cfg.preset.vocab_size).path)
        arr, _ = pack(tok, load_corpus(ws, "train")["text"], cfg.preset.block_size)
        rows = [("plain loop, fp32", plain_loop(arr, cfg.preset, False, cfg.batch_size)),
                ("plain loop, bf16 autocast", plain_loop(arr, cfg.preset, True, cfg.batch_size))]
        rows.append(("plain loop, bf16, AdamW only", plain_loop(arr, cfg.preset, True, cfg.batch_size, optimizer="adamw")))
        rows.append(("plain loop, bf16, 1 thread", plain_loop(arr, cfg.preset, True, cfg.batch_size, threads=1)))
        for b, L in ((16, 128), (4, 512)):  # the same tokens per step, other shapes
            shaped = pack_shape(arr, L)
            rows.append((f"plain loop, bf16, {b} x {L}", plain_loop(shaped, replace(cfg.preset, block_size=L), True, b)))
        t0 = time.perf_counter()
        rows.append(("plain loop, bf16 + torch.compile", plain_loop(arr, cfg.preset, True, cfg.batch_size, True)))
        compile_s = time.perf_counter() - t0
        tcfg = replace(cfg, max_steps=WARM + STEPS, eval_every=10_000, save_every=10_000, sample_every=0,
                       progress_bar=False, bf16=True)
        without, with_ = [], []
        for _ in range(3):  # alternate, three times each: the machine is noisy
            without.append(trainer_run(ws, tcfg, panel=False))
            with_.append(trainer_run(ws, tcfg, panel=True))
        no_panel, with_panel = float(np.median(without)), float(np.median(with_))
        rows += [("HF Trainer, bf16 (median of 3)", no_panel), ("HF Trainer, bf16 + TrainingPanel (median of 3)", with_panel)]
        quality = [optimizer_run(ws, cfg, name) for name in ("adamw", "muon")]
    base = rows[1][1]
    lines = [f"model: quick preset ({cfg.preset.hidden_size}d × {cfg.preset.num_layers} layers), "
             f"batch {cfg.batch_size} × {cfg.preset.block_size} tokens unless named, {STEPS} timed steps after {WARM}",
             f"{'setup':<48}{'tokens/s':>10}{'vs plain bf16':>15}"]
    for name, r in rows:
        lines.append(f"{name:<48}{r:>10,.0f}{r / base:>15.2f}")
    lines.append(f"panel attached / not attached: {with_panel / no_panel:.3f} (aim ≥ 0.97); "
                 f"runs: {', '.join(f'{a:,.0f}/{b:,.0f}' for a, b in zip(with_, without))}")
    lines.append(f"HF Trainer / plain loop (bf16): {no_panel / base:.3f}")
    lines.append(f"the torch.compile row took {compile_s:.0f} s in all, compilation included (about 45 s with a "
                 f"cold inductor cache); the quick run trains for ~3 minutes, so eager bf16 stays its default")
    lines += ["", f"optimizer: the whole quick run ({cfg.max_steps} steps, same model, data, schedule and seed)",
              f"{'optimizer':<34}{'held-out loss':>18}{'fall':>8}{'bits/byte':>11}{'seconds':>9}"]
    for q in quality:
        lines.append(f"{q['name']:<34}{q['first']:>8.3f} → {q['last']:<7.3f}{q['fall']:>8.1%}{q['bpb']:>11.3f}"
                     f"{q['seconds']:>9.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
