"""Model FLOP utilisation of the training stages, on this CPU as it is and with the AVX2 paths forced.

Pretraining (the quick recipe, fixed steps) and SFT (full fine-tuning, fixed steps) on the same quick-preset base,
each through its stage's own code (HF Trainer, the precision :mod:`puyu_lab.numerics` picks), each kind of CPU in
its own process. MFU = the model FLOP/s achieved over the training loop (tokens/s × training FLOPs per token,
6·N + attention) divided by the ``numerics`` matmul probe in the run's dtype — the stage's manifest figure.
A time budget's plan is printed beside it: the steps the quick profile's budget buys on this machine.
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
    keep = ("tokens_per_s", "model_gflops", "probe_gflops", "mfu", "precision")
    return {"machine": machine(), "numerics": choose().summary(),
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
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.path.insert(0, str(Path(__file__).parent))
        print(json.dumps(measure(sys.argv[2])))
    else:
        print(main())
