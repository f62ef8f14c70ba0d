"""Model FLOP utilisation of the training stages, on this CPU as it is and with the AVX2 paths forced.

Pretraining (the quick recipe, fixed steps) and SFT (full fine-tuning, fixed steps) on the same quick-preset base,
each through its stage's own code (HF Trainer, the precision :mod:`puyu_lab.numerics` picks), each kind of CPU in
its own process. MFU = the model FLOP/s achieved over the training loop (tokens/s × training FLOPs per token,
6·N + attention) divided by the ``numerics`` matmul probe in the run's dtype — the stage's manifest figure.
A time budget's plan is printed beside it: the steps the quick profile's budget buys on this machine.

Where a pretraining step's time goes: the stage's own model, optimizer (Muon + AdamW, its Newton–Schulz dtype from
``numerics``) and autocast on real packed corpus blocks, each part timed on its own over ``BREAKDOWN_STEPS`` steps —
forward, backward, the optimizer step — and, inside the forward, the attention (SDPA) and the output layer's share
from torch's profiler; the rest of the stage's measured step time is the Trainer's own work (data, logging, callbacks).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

PRETRAIN_STEPS = 60
SFT_STEPS = 60
BREAKDOWN_STEPS = 12


def breakdown(ws) -> dict:
    """Seconds per pretraining step in forward, backward and the optimizer (means over BREAKDOWN_STEPS after 3
    warm-up steps), and the profiler's share of attention and of the output layer in forward + backward."""
    import contextlib
    import time

    import torch
    from transformers import LlamaForCausalLM

    from puyu_lab.artifacts import load_corpus
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.numerics import resolve
    from puyu_lab.pretrain.model import llama_config
    from puyu_lab.pretrain.optim import build_optimizer, zero_init_residual_projections
    from puyu_lab.pretrain.train import PretrainConfig, pack

    cfg = PretrainConfig.for_profile("quick")
    tok = load_tokenizer(ws.get("tokenizer/spm").path)
    blocks, _ = pack(tok, (r["text"] for r in load_corpus(ws).to_list()), cfg.preset.block_size,
                     max_blocks=cfg.batch_size * (BREAKDOWN_STEPS + 3))
    data = torch.as_tensor(blocks, dtype=torch.long)
    num = resolve(None, "cpu")
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(cfg.preset, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    zero_init_residual_projections(model)
    opt = build_optimizer(model, cfg, ns_dtype=num.muon_ns_dtype)
    cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if num.bf16 else contextlib.nullcontext
    t = {"forward": [], "backward": [], "optimizer": []}
    for i in range(BREAKDOWN_STEPS + 3):
        x = data[i * cfg.batch_size:(i + 1) * cfg.batch_size]
        t0 = time.perf_counter()
        with cast():
            loss = model(input_ids=x, labels=x).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if i >= 3:
            for k, a, b in (("forward", t0, t1), ("backward", t1, t2), ("optimizer", t2, t3)):
                t[k].append(b - a)
    from torch.profiler import ProfilerActivity, profile

    x = data[:cfg.batch_size]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with cast():
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
    ev = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in ev) or 1
    attn = sum(e.self_cpu_time_total for e in ev if "attention" in e.key or "flash" in e.key)
    model.zero_grad(set_to_none=True)
    return {"precision": num.dtype, **{k: sum(v) / len(v) for k, v in t.items()}, "attention_share": attn / total}


def measure(home: str) -> dict:
    """In a child process: pretrain and SFT for fixed steps in a copy of ``home``; their manifests' figures."""
    import shutil

    from puyu_lab.finetune.config import SFTConfig
    from puyu_lab.finetune.train import finetune
    from puyu_lab.numerics import choose, machine
    from puyu_lab.pretrain.train import PretrainConfig, pretrain
    from puyu_lab.workspace import Workspace

    with tempfile.TemporaryDirectory() as d:
        shutil.copytree(home, Path(d) / "ws", symlinks=True)
        ws = Workspace(Path(d) / "ws")
        quick = PretrainConfig.for_profile("quick")
        pretrain(ws, replace(quick, budget_s=None, max_steps=PRETRAIN_STEPS, eval_every=PRETRAIN_STEPS,
                             save_every=PRETRAIN_STEPS, sample_every=0, progress_bar=False))
        pm = ws.get("model/base").metrics
        sft = finetune(ws, replace(SFTConfig.for_profile("quick"), budget_s=None, max_steps=SFT_STEPS, sample_every=0,
                                   save_every=SFT_STEPS, progress_bar=False), score=False, save=False)
        sm = sft.metrics
        parts = breakdown(ws)
    keep = ("tokens_per_s", "model_gflops", "probe_gflops", "mfu", "precision")
    step_s = quick.tokens_per_step / pm["tokens_per_s"]  # the stage's own mean step, Trainer included
    return {"machine": machine(), "numerics": choose().summary(), "step_s": step_s, "parts": parts,
            "pretrain": {k: pm.get(k) for k in keep}, "sft": {k: sm.get(k) for k in keep}}


def main() -> str:
    from puyu_lab.workspace import Workspace
    from common import cpu_kinds, tiny_base

    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "ws"
        tiny_base(Workspace(home), 10)
        out = {}
        for label, env in cpu_kinds():
            r = subprocess.run([sys.executable, __file__, "--child", str(home)], env=env, capture_output=True,
                               text=True, cwd=Path(__file__).parent)
            if r.returncode:
                raise RuntimeError(f"{label}: {r.stderr[-2000:]}")
            out[label] = json.loads(r.stdout.strip().splitlines()[-1])
    lines = [f"quick preset, fixed steps (pretraining {PRETRAIN_STEPS}, SFT {SFT_STEPS}), the stages' own code",
             f"{'CPU paths':<13}{'stage':<10}{'precision':>10}{'tokens/s':>10}{'GFLOP/s':>9}{'probe':>8}{'MFU':>7}"]
    for label, res in out.items():
        for stage in ("pretrain", "sft"):
            m = res[stage]
            lines.append(f"{label:<13}{stage:<10}{m['precision']:>10}{m['tokens_per_s']:>10,.0f}"
                         f"{m['model_gflops']:>9.1f}{m['probe_gflops']:>8.1f}{m['mfu']:>7.0%}")
        mc = res["machine"]
        lines.append(f"{'':<13}({mc['cpu']}, {mc['cores']} cores, capability {mc['capability']}; {res['numerics']})")
    lines += ["", f"where a quick pretraining step goes (ms; the stage's model and optimizer on real blocks, "
                  f"{BREAKDOWN_STEPS} steps timed part by part)",
              f"{'CPU paths':<13}{'forward':>9}{'backward':>10}{'optimizer':>11}{'sum':>7}{'stage step':>12}{'attention':>11}"]
    for label, res in out.items():
        p = res["parts"]
        total = p["forward"] + p["backward"] + p["optimizer"]
        lines.append(f"{label:<13}{p['forward'] * 1e3:>9.0f}{p['backward'] * 1e3:>10.0f}{p['optimizer'] * 1e3:>11.0f}"
                     f"{total * 1e3:>7.0f}{res['step_s'] * 1e3:>12.0f}{p['attention_share']:>10.0%}")
    lines.append(f"(stage step = the pretrain stage's own mean step over its {PRETRAIN_STEPS} steps, HF Trainer included — above the sum "
                 "where the Trainer's data, logging and callbacks cost, below it where the stage ran warmer; attention = "
                 "SDPA's share of forward + backward self time in torch's profiler)")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.path.insert(0, str(Path(__file__).parent))
        print(json.dumps(measure(sys.argv[2])))
    else:
        print(main())
