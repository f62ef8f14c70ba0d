"""InternLM-Train stage: training throughput on this CPU, twice: as it is, and with the AVX2 paths forced.

1. The numeric paths side by side: fp32 vs bf16 autocast, and Muon's Newton–Schulz in bf16 (torch's
   own) vs fp32, plus AdamW alone — the row :func:`puyu_lab.numerics.choose` picks is marked ``◀``.
   The table is printed for this CPU's native capability and again under
   ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` (what an AVX2 laptop gets), each in its
   own process, so the choice is checked against the fastest row on both kinds of CPU.
2. What else helps on the chosen path: threads, batch shape, ``torch.compile``.
3. The HF Trainer (auto precision) vs the plain loop — the cost of the Trainer's machinery; the
   Trainer with the TrainingPanel attached vs without — the panel must cost ≤ 3 %.
4. Sample generation with the KV cache (``model.generate``) vs re-encoding the sequence each token.
5. What the optimizer buys: the whole quick run with AdamW alone vs Muon + AdamW (held-out loss).
Slow rows (bf16 where it is emulated: ~20 s a step) are timed over fewer steps, never fewer than 2.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

STEPS = 16
WARM = 4
ROW_BUDGET_S = 15.0  # a row stops timing after this long (with at least MIN_STEPS steps)
MIN_STEPS = 2


def plain_loop(arr, preset, bf16: bool, batch: int, compile: bool = False, threads: int | None = None,
               optimizer: str = "muon", ns_dtype: str = "fp32") -> float:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _loop(arr, preset, bf16, batch, compile, optimizer, ns_dtype)
    finally:
        torch.set_num_threads(before)


def _loop(arr, preset, bf16: bool, batch: int, compile: bool, optimizer: str, ns_dtype: str) -> float:
    import torch
    from transformers import LlamaForCausalLM

    from puyu_lab.pretrain.model import llama_config
    from puyu_lab.pretrain.optim import build_optimizer
    from puyu_lab.pretrain.train import PretrainConfig

    torch.manual_seed(0)
    m = LlamaForCausalLM(llama_config(preset))
    if compile:
        m.forward = torch.compile(m.forward)  # compiled during the warm-up steps, not timed
    opt = build_optimizer(m, PretrainConfig(preset=preset, optimizer=optimizer), ns_dtype=ns_dtype)
    rng = np.random.default_rng(0)

    def step():
        x = torch.from_numpy(arr[rng.integers(0, len(arr), batch)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = m(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad()

    for i in range(WARM):
        t = time.perf_counter()
        step()
        if time.perf_counter() - t > 2.0 and not compile:  # a slow path: one warm-up step is enough
            break
    t0 = time.perf_counter()
    n = 0
    while n < STEPS and (n < MIN_STEPS or time.perf_counter() - t0 < ROW_BUDGET_S):
        step()
        n += 1
    return n * batch * preset.block_size / (time.perf_counter() - t0)


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
        from puyu_lab.panels.pretrain import TrainingPanel

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


def throughput_rows(arr_path: str) -> dict:
    """The throughput table on this process's CPU paths (run once per environment, in a child)."""
    from puyu_lab.numerics import choose
    from puyu_lab.pretrain.model import size_arithmetic
    from puyu_lab.pretrain.train import PretrainConfig
    from puyu_lab.profiles import get_profile

    cfg = replace(PretrainConfig.for_profile(get_profile("quick")), budget_s=None)  # fixed steps: reproducible
    arr = np.load(arr_path)
    path = choose("cpu")
    b = cfg.batch_size
    flops = size_arithmetic(cfg.preset)["train_flops_per_token"]
    rows = []  # (name, tokens/s, chosen, training FLOPs per token, dtype)
    for bf16 in (False, True):
        for ns in ("fp32", "bf16"):
            name = f"{'bf16 autocast' if bf16 else 'fp32':<14} Muon NS {ns}"
            chosen = (bf16 == path.bf16) and ns == path.muon_ns_dtype
            rows.append((name, plain_loop(arr, cfg.preset, bf16, b, ns_dtype=ns), chosen, flops,
                         "bf16" if bf16 else "fp32"))
    rows.append((f"{'bf16 autocast' if path.bf16 else 'fp32':<14} AdamW only",
                 plain_loop(arr, cfg.preset, path.bf16, b, optimizer="adamw"), False, flops, path.dtype))
    auto = dict(bf16=path.bf16, ns_dtype=path.muon_ns_dtype)
    rows.append(("chosen path, 1 thread", plain_loop(arr, cfg.preset, batch=b, threads=1, **auto), False, flops,
                 path.dtype))
    for bb, L in ((16, 128), (4, 512)):  # the same tokens per step, other shapes
        shaped = pack_shape(arr, L)
        pre = replace(cfg.preset, block_size=L)
        rows.append((f"chosen path, {bb} x {L}", plain_loop(shaped, pre, batch=bb, **auto), False,
                     size_arithmetic(pre)["train_flops_per_token"], path.dtype))
    t0 = time.perf_counter()
    rows.append(("chosen path + torch.compile", plain_loop(arr, cfg.preset, batch=b, compile=True, **auto), False,
                 flops, path.dtype))
    compile_s = time.perf_counter() - t0
    return {"rows": rows, "path": path.to_dict(), "compile_s": compile_s,
            "capability": path.capability, "threads": __import__("torch").get_num_threads()}


def sampling_rates(ws, cfg) -> dict:
    """Tokens/s of the training panel's samples: the KV cache vs re-encoding every token."""
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.pretrain.train import generate_samples, load_model

    model, tok = load_model(ws)
    out = {}
    for cache in (False, True):
        t0 = time.perf_counter()
        texts = generate_samples(model, tok, cfg.prompts, 64, cfg.seed, use_cache=cache)
        n = sum(len(tok(t)["input_ids"]) - len(tok(p)["input_ids"]) for t, p in zip(texts, cfg.prompts))
        out["kv cache" if cache else "re-encode"] = n / (time.perf_counter() - t0)
    return out


def _table(res: dict, title: str) -> list[str]:
    rows = res["rows"]
    base = rows[0][1]
    probe = res["path"]["probe"]
    lines = [f"{title}: capability {res['capability']}, {res['threads']} threads; "
             f"chosen: {res['path']['dtype']} ({res['path']['reason']}); matmul probe fp32 {probe['fp32']:g} / "
             f"bf16 {probe['bf16']:g} GFLOP/s",
             f"  {'setup':<40}{'tokens/s':>10}{'vs fp32':>9}{'GFLOP/s':>9}{'MFU':>7}"]
    best = max(r[1] for r in rows[:4])  # the four precision × Newton–Schulz rows (same optimizer)
    for name, r, chosen, flops, dtype in rows:
        mark = "  ◀ chosen" if chosen else ""
        gf = r * flops / 1e9  # model FLOP/s (6·N + attention per token), over the probe in the row's dtype
        lines.append(f"  {name:<40}{r:>10,.0f}{r / base:>9.2f}{gf:>9.1f}{gf / probe[dtype]:>7.0%}{mark}")
    ch = next(r[1] for r in rows if r[2])
    lines.append(f"  chosen / fastest precision row: {ch / best:.3f} (aim ≥ 0.95); torch.compile row "
                 f"{res['compile_s']:.0f} s with compilation")
    return lines


def main(tables_only: bool = False) -> str:
    from puyu_lab.data.pipeline import load_corpus, prepare
    from puyu_lab.data.sources import load_sources
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.pretrain.train import PretrainConfig, pack, train_tokenizer
    from puyu_lab.profiles import get_profile
    from puyu_lab.workspace import Workspace

    cfg = replace(PretrainConfig.for_profile(get_profile("quick")), budget_s=None)  # fixed steps: reproducible
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(d)
        prepare(raw=load_sources(["news-zh"], limit_per_source=1500), show_progress=False).export(ws)
        tok = load_tokenizer(train_tokenizer(ws, cfg.preset.vocab_size).path)
        arr, _ = pack(tok, load_corpus(ws, "train")["text"], cfg.preset.block_size)
        arr_path = os.path.join(d, "blocks.npy")
        np.save(arr_path, arr)
        tables = {}
        from common import cpu_kinds

        for label, env in cpu_kinds():
            out = subprocess.run([sys.executable, __file__, "--table", arr_path], env=env, check=True,
                                 capture_output=True, text=True).stdout
            tables[label] = json.loads(out.strip().splitlines()[-1])
        if tables_only:
            return "\n".join(sum(([""] + _table(res, label) for label, res in tables.items()), []))
        tcfg = replace(cfg, max_steps=WARM + STEPS, eval_every=10_000, save_every=10_000, sample_every=0,
                       progress_bar=False)
        without, with_ = [], []
        for _ in range(3):  # alternate, three times each: the machine is noisy
            without.append(trainer_run(ws, tcfg, panel=False))
            with_.append(trainer_run(ws, tcfg, panel=True))
        no_panel, with_panel = float(np.median(without)), float(np.median(with_))
        sampling = sampling_rates(ws, cfg)
        quality = [optimizer_run(ws, cfg, name) for name in ("adamw", "muon")]
    lines = [f"model: quick preset ({cfg.preset.hidden_size}d × {cfg.preset.num_layers} layers), "
             f"batch {cfg.batch_size} × {cfg.preset.block_size} tokens unless named, up to {STEPS} timed steps "
             f"after up to {WARM} (slow rows: ≥ {MIN_STEPS} steps, ~{ROW_BUDGET_S:.0f} s)"]
    for label, res in tables.items():
        lines += [""] + _table(res, label)
    chosen_native = next(r[1] for r in tables["native"]["rows"] if r[2])
    lines += ["", f"HF Trainer, auto precision (median of 3): {no_panel:,.0f} tokens/s; + TrainingPanel: "
              f"{with_panel:,.0f}",
              f"panel attached / not attached: {with_panel / no_panel:.3f} (aim ≥ 0.97); "
              f"runs: {', '.join(f'{a:,.0f}/{b:,.0f}' for a, b in zip(with_, without))}",
              f"HF Trainer / plain loop (chosen path, native): {no_panel / chosen_native:.3f}",
              f"samples (64 new tokens × {len(cfg.prompts)} prompts): KV cache {sampling['kv cache']:,.0f} tokens/s, "
              f"re-encoding {sampling['re-encode']:,.0f} tokens/s ({sampling['kv cache'] / sampling['re-encode']:.1f}×)"]
    lines += ["", f"optimizer: the whole quick run ({cfg.max_steps} steps, same model, data, schedule and seed, "
              f"auto precision)",
              f"{'optimizer':<34}{'held-out loss':>18}{'fall':>8}{'bits/byte':>11}{'seconds':>9}"]
    for q in quality:
        lines.append(f"{q['name']:<34}{q['first']:>8.3f} → {q['last']:<7.3f}{q['fall']:>8.1%}{q['bpb']:>11.3f}"
                     f"{q['seconds']:>9.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--table"]:
        print(json.dumps(throughput_rows(sys.argv[2])))
    else:  # --tables: only the two throughput tables (about 8 minutes on 2 cores)
        print(main(tables_only=sys.argv[1:2] == ["--tables"]))
