"""InternLM-Train stage across processes: tokens/s of the same pretraining run on 1 process and on N (data
parallelism: ``puyu-lab pretrain train --nproc N`` — torchrun, the HF Trainer's DDP, gloo on this CPU).

Rows, side by side in one run, alternated twice, the best of each kept (the machine is noisy): one process on every core (its intra-op
threads), one process on one thread, and N processes (N = 2, and 4 where the machine has the cores) with the cores
shared out (the launcher's OMP_NUM_THREADS = cores / N). Every row runs the same config — quick preset, the same
global batch, seed and numeric path (probed once, here) — through the stage's own command, and its tokens/s is the
one the artifact records (all processes together, the Trainer's own clock). The curves of the one-process and the
two-process runs are compared step by step: the same run, to the numeric path's rounding.

Two efficiencies are printed: per worker (InternLM-Train's "acceleration efficiency": N workers' tokens/s over N
times one worker's, a worker here being one process on one core) and on this machine (N processes over one
process on the same cores).

GPUs: none on these machines, so no GPU row is measured here. On a GPU machine ``--nproc N`` runs one process per
GPU over NCCL. FSDP (sharding parameters, gradients and optimizer state) is not wired in: the ``gpu`` preset's
~100 M parameters and their AdamW state fit one GPU, where DDP is the data parallelism that applies.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

STEPS = 30
ROUNDS = 2


def _run(home: Path, config: Path, nproc: int, threads: int | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "puyu_lab", "pretrain", "train", "--config", str(config), "--home", str(home)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{nproc} process(es): {(r.stdout + r.stderr)[-3000:]}")
    from puyu_lab.workspace import Workspace

    art = Workspace(home).get("model/base")
    curve = json.loads((art.path / "curve.json").read_text(encoding="utf-8"))
    return {"tokens_per_s": art.metrics["tokens_per_s"], "nproc": art.metrics["nproc"],
            "loss": {h["step"]: h["loss"] for h in curve if "loss" in h}}


def main() -> str:
    import torch

    from puyu_lab.data.pipeline import prepare
    from puyu_lab.data.sources import load_sources
    from puyu_lab.numerics import resolve
    from puyu_lab.pretrain.launch import cores
    from puyu_lab.pretrain.model import size_arithmetic
    from puyu_lab.pretrain.train import PretrainConfig, train_tokenizer
    from puyu_lab.profiles import get_profile
    from puyu_lab.workspace import Workspace

    load = os.getloadavg()[0]  # before this bench's own work: other work on the machine shows in every row
    n_cores = cores()
    path = resolve(None, "cpu")  # one probe, for every row: the processes must not choose apart
    cfg = replace(PretrainConfig.for_profile(get_profile("quick")), budget_s=None, max_steps=STEPS,
                  eval_every=10_000, save_every=10_000, sample_every=0, log_every=1, progress_bar=False,
                  bf16=path.bf16)
    setups = [("1 process × all cores", 1, None), ("1 process × 1 thread", 1, 1)]
    setups += [(f"{n} processes × {n_cores // n} thread{'s' if n_cores // n > 1 else ''}", n, None)
               for n in (2, 4) if n <= n_cores and cfg.batch_size % n == 0]
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in setups}
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "ws"
        ws = Workspace(home)
        prepare(raw=load_sources(["news-zh"], limit_per_source=1500), show_progress=False).export(ws)
        train_tokenizer(ws, cfg.preset.vocab_size)
        config = Path(d) / "pretrain.json"
        config.write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
        for _ in range(ROUNDS):  # alternate: the machine is noisy
            for name, nproc, threads in setups:
                runs[name].append(_run(home, config, nproc, threads))
    rate = {name: max(r["tokens_per_s"] for r in rs) for name, rs in runs.items()}  # the best: others' load only slows
    base, one_thread = rate[setups[0][0]], rate[setups[1][0]]
    grad_mb = size_arithmetic(cfg.preset)["parameters"] * 4 / 1e6  # DDP all-reduces fp32 gradients
    lines = [f"data parallel (torchrun + HF Trainer DDP, gloo): quick preset, global batch {cfg.batch_size} × "
             f"{cfg.preset.block_size} tokens, {STEPS} steps, {path.dtype} ({path.capability}), {n_cores} cores "
             f"({torch.get_num_threads()} threads in one process); best of {ROUNDS} runs, alternated",
             f"  {'setup':<30}{'tokens/s':>10}{'vs 1 process':>14}  runs"]
    for name, _, _ in setups:
        lines.append(f"  {name:<30}{rate[name]:>10,.0f}{rate[name] / base:>14.2f}  "
                     + " / ".join(f"{r['tokens_per_s']:,.0f}" for r in runs[name]))
    for name, nproc, _ in setups[2:]:
        per_worker = rate[name] / (nproc * one_thread)
        here = rate[name] / base
        lines.append(f"  {nproc} processes: scaling efficiency per worker (tokens/s ÷ ({nproc} × one 1-thread process)) "
                     f"{per_worker:.2f}; on this machine (÷ one process on the same cores) {here:.2f}")
    two = next((name for name, n, _ in setups if n == 2), None)
    if two:
        a, b = runs[setups[0][0]][0]["loss"], runs[two][0]["loss"]
        gap = max(abs(a[s] - b[s]) for s in a if s in b)
        lines.append(f"  the same run: 1 vs 2 processes, max |Δ loss| over {len(a)} steps = {gap:.1e} ({path.dtype}; "
                     f"fp32 parity is tests/pretrain/test_ddp.py)")
    if two and rate[two] >= base:
        lines.append(f"  measured at or above 1 on this machine: one process did not keep the cores busy (its all-cores "
                     f"row against its 1-thread row: {base / one_thread:.2f}), a sign of other work on the machine (load "
                     f"average {load:.1f} on {n_cores} cores when the bench began); rerun on a quiet machine")
    elif load > n_cores / 2:
        lines.append(f"  (other work was running: load average {load:.1f} on {n_cores} cores when the bench began)")
    lines += [f"  why below 1 on one machine: the {n_cores} cores are the same in every row — one process already keeps them "
              f"busy with its intra-op threads, so more processes add no compute, only work: each step every process "
              f"all-reduces {grad_mb:.0f} MB of gradients through gloo (memory copies over loopback, on the very cores "
              f"that compute, so overlapping them with the backward pass gains little), the processes wait for the "
              f"slowest, and each multiplies smaller matrices (the batch of {cfg.batch_size} split across them), on "
              f"one shared memory bus. Data parallelism pays where "
              f"each worker brings its own compute (GPUs, machines) and NCCL overlaps the all-reduce with the "
              f"backward pass: InternLM-Train's ~90 % acceleration efficiency is that kind of figure, at scale.",
              "  GPU rows: not measured here (no GPU on these machines); FSDP for the gpu preset is not wired in."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    print(main())
