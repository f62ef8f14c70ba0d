"""The pretrain stage on N processes: data parallelism with the field's own tools.

``puyu-lab pretrain train --nproc N`` (or :func:`launch`) starts N copies of ``puyu-lab pretrain train`` under
``torchrun`` (``torch.distributed.run``); inside each, the HF Trainer sees torchrun's ``RANK`` / ``WORLD_SIZE``
and runs as DDP (DistributedDataParallel): gloo on a CPU, NCCL on GPUs. Every process holds the whole model and
takes its share of each global batch; after the backward pass DDP all-reduces (averages) the gradients, so every
process applies the same update. Nothing here is distributed code of its own: torchrun starts and watches the
processes, the Trainer (through accelerate) shards the batches and wraps the model.

The config describes the *run*, the number of processes only how it is executed: ``batch_size`` is the global
batch, split evenly (``batch_size / N`` sequences per process and step), so the same config and seed give the same
loss curve on 1 process or on N (``tests/pretrain/test_ddp.py``). Only rank 0 writes: the run directory, the
checkpoints (the Trainer's own rule), the events and the ``model/base`` artifact, whose metrics record ``nproc``
and ``global_batch``.

What every process must agree on is settled before they start (:func:`check_parallel`, :func:`check_worker`): a
fixed number of steps (a time budget is planned from each process's own step times, which differ), the numeric
path (chosen per process by a timing probe on CPUs with native bf16: the launcher probes once) and a batch that
splits evenly.

Not here: tensor and pipeline parallelism (InternLM-Train splits each layer's matrices, and the stack of layers,
across GPUs; a 5 M-parameter model fits one core), and FSDP / ZeRO sharding of the optimizer state for the
``gpu`` preset — with one GPU on these machines there is nothing to shard across, so it is not measured here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ..errors import InputError, PuyuError
from ..workspace import Workspace
from .config import PretrainConfig


def world() -> tuple[int, int]:
    """(rank, world size) of this process, as torchrun sets them (``RANK``, ``WORLD_SIZE``); (0, 1) outside it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def backend(cuda: bool) -> str:
    """The collective backend DDP uses: NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if cuda else "gloo"


def check_parallel(cfg: PretrainConfig, nproc: int, *, cuda: bool | None = None, devices: int | None = None) -> None:
    """Refuse, before any process starts, a run the N processes could not make together; one message per case,
    naming the field and what to do. ``cuda``: default, whether this machine has a GPU; ``devices``: GPUs
    (``cuda``) or CPU cores available (default: this machine's)."""
    if nproc < 1:
        raise InputError(f"--nproc {nproc}: the number of training processes is at least 1",
                         zh=f"--nproc {nproc}：训练进程数至少为 1")
    if nproc == 1:
        return
    if cfg.batch_size % nproc:
        raise InputError(f"batch_size {cfg.batch_size} (the global batch) does not split evenly across --nproc {nproc} "
                         f"processes: choose an --nproc that divides {cfg.batch_size}, or a batch_size that is a "
                         f"multiple of {nproc}",
                         zh=f"batch_size {cfg.batch_size}（全局批大小）无法平均分给 --nproc {nproc} 个进程："
                            f"请选能整除 {cfg.batch_size} 的 --nproc，或把 batch_size 设为 {nproc} 的倍数")
    if cfg.budget_s:
        raise InputError(f"budget_s={cfg.budget_s:g} with --nproc {nproc}: a time budget is planned from each "
                         f"process's own step times, and the processes must stop at the same step. Give a fixed "
                         f"number of steps: --max-steps N (or --budget 0 for the recipe's {cfg.max_steps} steps)",
                         zh=f"budget_s={cfg.budget_s:g} 与 --nproc {nproc} 不能同用：时间预算按各进程自己测得的步时"
                            f"来规划，而所有进程必须在同一步停下。请给定步数：--max-steps N"
                            f"（或 --budget 0，按配方的 {cfg.max_steps} 步）")
    if cuda is None or devices is None:
        import torch

        cuda = torch.cuda.is_available() if cuda is None else cuda
        devices = (torch.cuda.device_count() if cuda else cores()) if devices is None else devices
    if nproc > devices:
        what, what_zh = ("GPUs", "块 GPU") if cuda else ("CPU cores", "个 CPU 核")
        raise InputError(f"--nproc {nproc}: this machine has {devices} {what}, and each training process needs one "
                         f"of its own: use --nproc {devices} or fewer",
                         zh=f"--nproc {nproc}：这台机器只有 {devices} {what_zh}，每个训练进程需要独占一个："
                            f"请用 --nproc {devices} 或更少")


def check_worker(cfg: PretrainConfig, nproc: int, *, cuda: bool) -> None:
    """Inside one of the N processes: the config must also fix what each process would otherwise choose alone
    (the launcher fixes it: :func:`launch`)."""
    check_parallel(cfg, nproc, cuda=cuda, devices=nproc)  # the launcher checked the machine's devices
    if cfg.bf16 is None and not cuda:
        raise InputError(f"bf16=None with {nproc} processes: on a CPU each process would choose its numeric path by "
                         "its own timing probe, and the processes could differ. Set bf16 to true or false in the "
                         "config (puyu-lab pretrain train --nproc N does this for you, from one probe)",
                         zh=f"bf16=None 且有 {nproc} 个进程：在 CPU 上每个进程会各自测速来选数值精度，结果可能不一致。"
                            "请在配置中把 bf16 设为 true 或 false（puyu-lab pretrain train --nproc N 会用一次测速替你设好）")


def _settled(cfg: PretrainConfig, cuda: bool) -> PretrainConfig:
    """The config every process gets: on a CPU the numeric path is chosen once, here (a GPU's choice does not
    depend on timing)."""
    if cfg.bf16 is None and not cuda:
        from ..numerics import resolve

        return replace(cfg, bf16=resolve(None, "cpu").bf16)
    return cfg


def command(home: str | os.PathLike, config_file: str | os.PathLike, nproc: int, *, resume: bool = False) -> list[str]:
    """The torchrun command line of an N-process run (what ``--nproc`` runs; print it to run it by hand)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", f"--nproc-per-node={nproc}",
            "-m", "puyu_lab", "pretrain", "train", "--config", str(config_file), "--home", str(home),
            *(["--resume"] if resume else [])]


def launch(ws: Workspace, cfg: PretrainConfig | None = None, nproc: int = 1, *, resume: bool = False,
           capture: bool = False):
    """Train ``model/base`` on ``nproc`` processes (torchrun + the Trainer's DDP) → ``PretrainResult``, as
    :func:`~puyu_lab.pretrain.train.pretrain` returns it. ``nproc=1`` runs in this process. ``capture``: keep
    the processes' output (it is shown only if they fail) instead of letting it through."""
    import torch

    from .train import MODEL, PretrainResult, last_checkpoint, pretrain

    ws = ws.for_stage("pretrain")
    cfg = cfg or PretrainConfig.for_profile()
    cuda = torch.cuda.is_available()
    check_parallel(cfg, nproc, cuda=cuda)
    if nproc == 1:
        return pretrain(ws, cfg, resume=resume)
    cfg = _settled(cfg, cuda)
    env = dict(os.environ)
    if not cuda:  # the cores shared out: torchrun's own default is 1 thread per process, whatever the machine
        env.setdefault("OMP_NUM_THREADS", str(max(1, cores() // nproc)))
    with tempfile.TemporaryDirectory(prefix="puyu-nproc-") as d:
        config_file = Path(d) / "pretrain.json"
        config_file.write_text(json.dumps(cfg.to_dict(), ensure_ascii=False), encoding="utf-8")
        print(f"torchrun: {nproc} processes ({backend(cuda)}), global batch {cfg.batch_size} = {nproc} × "
              f"{cfg.batch_size // nproc} sequences of {cfg.preset.block_size} tokens"
              + ("" if cuda else f", {env['OMP_NUM_THREADS']} thread(s) each"), flush=True)
        proc = subprocess.run(command(ws.root, config_file, nproc, resume=resume), env=env, text=True,
                              capture_output=capture)
    if proc.returncode:
        tail = ("\n" + (proc.stdout + proc.stderr)[-4000:]) if capture else ""
        raise PuyuError(f"the {nproc} training processes ended with exit status {proc.returncode}: their own "
                        f"messages say why (a setup error names the field to change; PUYU_LAB_DEBUG=1 shows "
                        f"tracebacks){tail}",
                        zh=f"{nproc} 个训练进程以退出码 {proc.returncode} 结束：原因见它们自己的输出（配置错误会指明"
                           f"要改的字段；设 PUYU_LAB_DEBUG=1 可看完整回溯）{tail}")
    art = ws.get(MODEL)
    m = art.metrics
    history = json.loads((art.path / "curve.json").read_text(encoding="utf-8"))
    samples = json.loads((art.path / "samples.json").read_text(encoding="utf-8"))
    return PretrainResult(m["steps"], m["max_steps"], m["stopped"], last_checkpoint(ws), history, art,
                          samples.get("before", {}), samples.get("after", {}))
