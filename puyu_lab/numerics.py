"""Which numeric path to train and run in on this machine: bf16 where it is native, fp32 where not.

bf16 autocast is a win only where the hardware multiplies bf16 natively (CPUs with AVX512-BF16 or
AMX, GPUs from Ampere on). On a plain AVX2 CPU — most laptops, many cloud machines — PyTorch
*emulates* bf16: a matmul, and the quick pretraining step under bf16 autocast, run many times slower
than in fp32 (`make bench`: bench_pretrain times both paths on this CPU and with the AVX2 paths forced).
So the choice is made per machine, at run time, from two facts:

* the **capability** the math libraries will use: the CPU's flags (``avx512_bf16``, ``amx_bf16``)
  as PyTorch reads them, limited by ``ATEN_CPU_CAPABILITY`` (PyTorch's kernels) and
  ``ONEDNN_MAX_CPU_ISA`` (oneDNN's), which force the AVX2 paths on a bigger CPU;
* a **measured probe**: the same small matmul in bf16 and in fp32 (once per process), since
  a capability string alone can mislead (a library without the fast kernel, a VM that hides it).

bf16 is chosen only when both agree that it is native *and* faster; everything else runs in fp32.
The same answer picks the dtype of Muon's Newton–Schulz iterations (``pretrain/optim.py``). The
decision, with its reason and the probe's figures, goes into each run's manifest, the training
panel and ``puyu-lab doctor``. Hand-written because no library answers "is bf16 fast here?".
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass, field

# oneDNN ISA names, from oldest to newest (its ONEDNN_MAX_CPU_ISA values); bf16 is native from
# AVX512_CORE_BF16 on
_ONEDNN_ISAS = ["SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
                "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX", "AVX512_CORE_AMX",
                "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL"]
PROBE_SHAPE = (128, 256, 512)  # (m, k, n): one small linear layer of the quick model
# bf16 must beat fp32 by this factor on the probe to be chosen (autocast adds casts around it)
BF16_MARGIN = 1.2
FORCE_ENV = "PUYU_LAB_PRECISION"  # "fp32" or "bf16" overrides the choice (recorded as forced)


@dataclass(frozen=True)
class NumericPath:
    """What a run computes in, and why."""

    dtype: str  # "fp32", "bf16" or "fp16" (autocast dtype for training; fp32 = no autocast)
    reason: str  # one line a learner can read
    device: str = "cpu"
    capability: str = ""  # torch.backends.cpu.get_cpu_capability(), or the GPU's name
    native_bf16: bool = False  # the hardware and the libraries' ISA limits allow native bf16
    probe: dict = field(default_factory=dict)  # measured GFLOP/s {"fp32": …, "bf16": …}
    forced: bool = False

    @property
    def bf16(self) -> bool:
        return self.dtype == "bf16"

    @property
    def fp16(self) -> bool:
        return self.dtype == "fp16"

    @property
    def pad_multiple(self) -> int | None:
        """Pad variable-length training batches to a multiple of this many tokens (``None``: to the longest).

        Under bf16 autocast on a CPU, oneDNN builds its kernels for each new input shape, and a batch padded
        only to its longest sequence has a new length almost every step: the quick SFT run (batches of 25 to
        256 tokens) was slower in bf16 on an AMX Xeon than in fp32 — slower on the path chosen for being
        faster. Padded to a multiple of 32 the shapes repeat and bf16 is the faster again. In fp32 (MKL) the
        extra padding only costs time — so only bf16 CPU runs pad."""
        return 32 if self.dtype == "bf16" and self.device == "cpu" else None

    @property
    def muon_ns_dtype(self) -> str:
        """The dtype for Muon's Newton–Schulz iterations: bf16 only where it is native and fast."""
        return "bf16" if self.dtype == "bf16" else "fp32"

    def summary(self) -> str:
        return f"{self.dtype} ({self.reason})"

    def to_dict(self) -> dict:
        return asdict(self)


def _cpu_flags() -> dict:
    """This CPU's feature flags as PyTorch (≥ 2.9, the project's floor) reads them."""
    import torch

    return dict(torch._C._cpu._get_cpu_capability())


def cpu_native_bf16(env: dict | None = None, flags: dict | None = None) -> tuple[bool, str]:
    """Whether this CPU multiplies bf16 natively in the math libraries as configured, and why (not).
    ``env`` and ``flags`` default to this process's environment and this CPU's flags."""
    import torch

    env = os.environ if env is None else env
    flags = _cpu_flags() if flags is None else flags
    hw = bool(flags.get("avx512_bf16") or flags.get("amx_bf16"))
    cap = env.get("ATEN_CPU_CAPABILITY", "").upper() or torch.backends.cpu.get_cpu_capability()
    if not hw:
        return False, f"bf16 emulated on this CPU ({cap}; no AVX512-BF16/AMX)"
    aten = env.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if aten and aten not in ("avx512", "amx"):
        return False, f"bf16 emulated: PyTorch limited to {aten.upper()} (ATEN_CPU_CAPABILITY)"
    isa = env.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa and isa in _ONEDNN_ISAS and _ONEDNN_ISAS.index(isa) < _ONEDNN_ISAS.index("AVX512_CORE_BF16"):
        return False, f"bf16 emulated: oneDNN limited to {isa} (ONEDNN_MAX_CPU_ISA)"
    return True, f"native bf16 ({cap}, {'AMX' if flags.get('amx_bf16') else 'AVX512-BF16'})"


def probe(device: str = "cpu", repeats: int = 24) -> dict:
    """GFLOP/s of one small matmul in fp32 and in bf16 on ``device``: the fastest of ``repeats`` single calls.

    Single calls, not a timed loop: a call is a fraction of a millisecond, and while another process holds a core
    one of torch's OpenMP threads can wait a whole scheduler slice at the call's barrier, so a loop that meets one
    such wait reads tens of times slower than the machine is (a CI run's lab 02, beside other tests, read a
    fiftieth of the undisturbed fp32 figure, and its "utilisation" came out above 1). The fastest single call
    is the machine's speed whenever any one call ran undisturbed."""
    import torch

    m, k, n = PROBE_SHAPE
    g = torch.Generator().manual_seed(0)
    a32 = torch.randn(m, k, generator=g).to(device)
    b32 = torch.randn(k, n, generator=g).to(device)
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = a32.to(dtype), b32.to(dtype)
        a @ b  # warm-up (first call allocates, picks kernels)
        best = float("inf")
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            a @ b
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        out[name] = round(2 * m * k * n / best / 1e9, 2)
    return out


def _forced(env) -> str | None:
    v = env.get(FORCE_ENV, "").strip().lower()
    if not v or v == "auto":
        return None
    if v not in ("fp32", "bf16", "fp16"):
        from .errors import InputError

        raise InputError(f"{FORCE_ENV}={v!r}: use 'auto', 'fp32', 'bf16' or 'fp16'",
                         zh=f"{FORCE_ENV}={v!r}：可选 'auto'、'fp32'、'bf16' 或 'fp16'")
    return v


@functools.lru_cache(maxsize=8)
def _choose(device: str, env_key: tuple) -> NumericPath:
    import torch

    env = dict(env_key)
    forced = _forced(env)
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        bf = torch.cuda.is_bf16_supported()
        if forced:
            return NumericPath(forced, f"forced by {FORCE_ENV}", "cuda", name, bf, {}, True)
        if bf:
            return NumericPath("bf16", "native bf16 on this GPU", "cuda", name, True)
        return NumericPath("fp16", "this GPU has no native bf16 (before Ampere) → fp16", "cuda", name, False)
    cap = torch.backends.cpu.get_cpu_capability()
    native, why = cpu_native_bf16(env)
    measured = probe("cpu")
    if forced:
        return NumericPath(forced, f"forced by {FORCE_ENV} ({why})", "cpu", cap, native, measured, True)
    ratio = measured["bf16"] / max(measured["fp32"], 1e-9)
    if not native:
        return NumericPath("fp32", f"{why} → fp32", "cpu", cap, False, measured)
    if ratio < BF16_MARGIN:
        return NumericPath("fp32", f"{why}, but measured bf16 only {ratio:.2f}× fp32 → fp32", "cpu", cap, True,
                           measured)
    return NumericPath("bf16", f"{why}, measured {ratio:.1f}× fp32 → bf16 autocast", "cpu", cap, True, measured)


_ENV_KEYS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", FORCE_ENV)


def choose(device: str | None = None) -> NumericPath:
    """The numeric path for ``device`` (default: CUDA when available, else CPU), cached per process."""
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    env = tuple((k, os.environ.get(k, "")) for k in _ENV_KEYS)
    return _choose(device, env)


def resolve(requested: bool | None, device: str | None = None) -> NumericPath:
    """A config's ``bf16`` setting (True / False, or None = choose per machine) as a NumericPath."""
    path = choose(device)
    if requested is None:
        return path
    want = "bf16" if requested else "fp32"
    if want == path.dtype:
        return path
    return NumericPath(want, f"set in the config (this machine's choice: {path.summary()})", path.device,
                       path.capability, path.native_bf16, path.probe, True)


def machine() -> dict:
    """This machine in a few fields (what a time or a speed was measured on): the CPU's name, the cores
    this process may use, the capability PyTorch's kernels use (``ATEN_CPU_CAPABILITY`` applied), the GPU."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    out = {"cpu": cpu, "cores": cores, "threads": torch.get_num_threads(),
           "capability": os.environ.get("ATEN_CPU_CAPABILITY", "").upper() or torch.backends.cpu.get_cpu_capability()}
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if isa:
        out["onednn_max_isa"] = isa
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def utilisation(tokens_per_s: float, flops_per_token: float, path: NumericPath) -> dict:
    """Model FLOP utilisation: the model FLOP/s a run achieved (tokens/s × training FLOPs per token, the
    6·N + attention count) over what this machine's matmul probe measured in the run's dtype."""
    achieved = tokens_per_s * flops_per_token / 1e9
    key = "bf16" if path.dtype == "bf16" else "fp32"
    # the probe again, after the run: the faster of the two (each can meet a busy neighbour; see probe())
    peak = max((path.probe or {}).get(key) or 0.0, probe(path.device).get(key) or 0.0) or None
    return {"model_gflops": round(achieved, 2), "probe_gflops": peak,
            "mfu": round(achieved / peak, 3) if peak else None}


def train_flops_per_token(model, context: float) -> float:
    """Training FLOPs per token of a transformers decoder, counted as ``pretrain.model.size_arithmetic``
    counts the quick model: 6 × the parameters outside the input embedding (forward 2, backward 4) plus
    the attention's scores and weighted sum, 12 · layers · ``context`` · hidden size."""
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel()
    return 6 * (params - emb) + 12 * cfg.num_hidden_layers * context * cfg.hidden_size
