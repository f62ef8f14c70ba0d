"""Measure a quantization ladder: size, memory, perplexity, KL from the reference, top-1, speed.

As llama.cpp's ``llama-perplexity`` measures them, and equal to its figures (a test): the text is cut
into windows of ``n_ctx`` tokens, each window's first token replaced by BOS when the vocabulary adds
one, and only the tokens after the first half are scored (:func:`scored`: positions ``n_ctx/2 + 1`` …
``n_ctx − 1`` of each window, every one with at least ``n_ctx/2`` tokens of context); KL divergence is ``Σ p_ref·(log p_ref − log p_q)`` per scored token
against the reference level's logits, and top-1 agreement is how often both pick the same token.
:func:`kld_stats` gives the rest of what ``llama-perplexity --kl-divergence`` prints: KL median,
99th / 99.9th percentile and maximum, "same top p", and Δp (the change in the probability of the
token that really comes next) as its mean and RMS.

Each level runs in its own process (``python -m puyu_lab.deploy.workers``, :mod:`.workers`), so the memory it reports
is that level's alone: the resident set after loading minus the one after the imports (what
loading the model costs, not the copied logits), beside the sizes llama.cpp itself reports (model
buffer, KV cache). Speed is a real greedy generation, repeated (mean ± sd), with the thread count
and the machine's load average recorded beside it: one run on a busy 2-core machine says little. The thread
count is picked as ``llama-bench`` lets you (its generation test at 1 … n threads, the fastest), and each GGUF
row carries ``llama-bench``'s own pp/tg figures at that count beside the ones through the Python binding.
Each GGUF level also answers held-out tasks greedily (``pipeline.task_items``; :func:`task_ok` scores a reply), so
the comparison shows what a level still does beside how far its distributions moved.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from gguf import GGMLQuantizationType

from ..errors import InputError
from ..events import Emitter, Event
from ..models.base import log_softmax
from .lmmath import kld_stats, targets_of, windows, with_bos
from .memory import KV_BYTES
from .workers import kv_values_per_position, window_logits


def task_ok(item: dict, reply: str) -> bool:
    """Whether ``reply`` solves ``item`` by its ``match`` (contracts.scoring: the eval stage's rule too)."""
    from ..contracts.scoring import answer_matches

    return answer_matches(item["match"], reply, item["answer"])


def task_scores(items: list[dict], replies: list[str]) -> tuple[float, float, dict]:
    """The share of items solved, its standard error (:func:`~puyu_lab.contracts.scoring.mean_stderr`, as the
    eval stage's scores have theirs; NaN under two items) and the share per task."""
    from ..contracts.scoring import mean_stderr

    ok = [task_ok(it, r) for it, r in zip(items, replies)]
    by: dict[str, list[bool]] = {}
    for it, o in zip(items, ok):
        by.setdefault(it["task"], []).append(o)
    se = mean_stderr([float(o) for o in ok])
    return float(np.mean(ok)), float("nan") if se is None else se, {k: float(np.mean(v)) for k, v in by.items()}


@dataclass
class LevelResult:
    level: str
    file: str  # a GGUF file, or the model directory for a transformers row
    size_mb: float  # the GGUF file; for transformers rows, the weights in memory
    bits_per_weight: float
    rss_mb: float
    ppl: float
    delta_ppl: float
    kl_mean: float
    kl_p99: float
    top1: float
    prefill_tps: float
    decode_tps: float
    backend: str = "llama.cpp"
    greedy: list[int] | None = None  # the token ids the decode speed was measured on (greedy, real logits)
    # llama-perplexity's KL-divergence view (see kld_stats), the speed's spread and conditions, and the
    # sizes llama.cpp reports (GGUF rows)
    kl_median: float = float("nan")
    kl_p999: float = float("nan")
    kl_max: float = float("nan")
    dp_mean: float = float("nan")  # mean change of the next token's probability, in percent
    dp_rms: float = float("nan")  # its root mean square, in percent
    prefill_sd: float = float("nan")
    decode_sd: float = float("nan")
    threads: int = 0
    load_avg: float = float("nan")  # the 1-minute load average while the speed was measured
    model_buffer_mb: float = float("nan")
    kv_cache_mb: float = float("nan")
    # on the text the model serves (chat): the reference's own replies to held-out prompts, reply tokens only
    kl_chat_mean: float = float("nan")
    kl_chat_p99: float = float("nan")
    top1_chat: float = float("nan")
    ppl_chat: float = float("nan")
    # llama.cpp's own llama-bench on the same file and threads (GGUF rows): prompt processing and generation,
    # mean and sd over its repeats — the C++ loop without the Python binding's per-token cost
    bench_pp_tps: float = float("nan")
    bench_pp_sd: float = float("nan")
    bench_tg_tps: float = float("nan")
    bench_tg_sd: float = float("nan")
    # held-out tasks answered greedily (GGUF rows; measure's task_items): the share solved, overall (with its
    # standard error: the panel's 95 % interval is ±1.96 of it) and per task, and the replies
    task_acc: float = float("nan")
    task_acc_stderr: float = float("nan")
    task_by: dict | None = None
    replies: list[str] | None = None

    def to_dict(self) -> dict:
        """The fields, with None where a figure was not measured (NaN is not JSON)."""
        return {k: (None if isinstance(v, float) and v != v else v) for k, v in asdict(self).items()}

    def key_figures(self) -> dict:
        """The level's figures in the ``quant/<model>`` manifest (what the status table shows); the task accuracy
        and its standard error only where the level answered the held-out tasks."""
        out = {"size_mb": round(self.size_mb, 2), "ppl": round(self.ppl, 3), "kl": round(self.kl_mean, 5),
               "top1": round(self.top1, 4), "decode_tps": round(self.decode_tps, 1)}
        out.update({k: round(v, 4) for k, v in (("task_acc", self.task_acc), ("task_acc_stderr", self.task_acc_stderr))
                    if v == v})
        return out


def measure_level(path: str | Path, ids: list[int], n_ctx: int, decode_tokens: int, threads: int,
                  tmp: Path, chat: list | None = None, tasks: list | None = None) -> tuple[np.ndarray, dict]:
    """One level in its own process: the logits of ``ids``' scored windows and its stats (``stats["chat_logits"]``:
    the reply rows of the ``chat`` conversations, when given; ``stats["replies"]``: a GGUF level's greedy replies to
    the ``tasks`` items)."""
    ids_file = tmp / "ids.json"
    if not ids_file.exists():
        ids_file.write_text(json.dumps({"ids": ids, "chat": chat or [], "tasks": tasks or []}))
    out = Path(tempfile.mkdtemp(dir=tmp))
    job = {"ids_file": str(ids_file), "out_dir": str(out), "n_ctx": n_ctx, "decode_tokens": decode_tokens,
           "threads": threads}
    if str(path).startswith("hf:"):  # hf:<variant>:<model dir>
        _, variant, model_dir = str(path).split(":", 2)
        job.update(kind="hf", variant=variant, model_dir=model_dir)
    else:
        job.update(kind="gguf", path=str(path))
    (out / "job.json").write_text(json.dumps(job), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "puyu_lab.deploy.workers", str(out / "job.json")],
                       capture_output=True, text=True, errors="replace")  # llama.cpp's log: see llamatools._run
    if r.returncode != 0:
        raise RuntimeError(f"measuring {path} failed: {r.stderr.strip()[-800:]}")
    stats = json.loads((out / "stats.json").read_text())
    if (out / "logits_chat.npy").exists():
        stats["chat_logits"] = np.load(out / "logits_chat.npy")
    return np.load(out / "logits.npy"), stats


def measure_ladder(files: dict[str, str | Path], ids: list[int], *, reference: str | None = None, n_ctx: int = 256,
                   decode_tokens: int = 64, threads: int | None = None, n_params: int | None = None,
                   bos: int | None = None, chat: list[tuple[list[int], int]] | None = None,
                   tasks: list[dict] | None = None,
                   on_event: Callable[[Event], None] | None = None) -> tuple[list[LevelResult], dict]:
    """Measure every level in ``files`` (level → GGUF path) on the token ids ``ids``.

    A value ``"hf:<variant>:<model dir>"`` measures a transformers row instead (see
    :data:`HF_VARIANTS`); transformers rows are compared with the reference too (F32 GGUF logits
    equal transformers fp32 to ~1e-6). Returns the results and the per-token detail for the
    heatmap: ``{"targets": ids scored, "kl": {level: per-token KL}}``. ``bos``: the vocabulary's BOS id
    when it adds one (each window then starts with it, as in ``llama-perplexity``). ``chat``: conversations
    ``(ids, start)`` — each scored from its beginning on its reply ``ids[start:]`` only (the ``*_chat`` columns).
    ``tasks``: held-out task items (``pipeline.task_items``) each GGUF level answers greedily (``task_acc``,
    ``task_by``, ``replies``; :func:`task_ok` scores them)."""
    em = Emitter("deploy", on_event)
    ids = with_bos(ids, n_ctx, bos)
    if len(windows(ids, n_ctx)) == 0:
        raise InputError(f"the evaluation text has {len(ids)} tokens: fewer than one window of {n_ctx}",
                         zh=f"评测文本只有 {len(ids)} 个词元：不够一个 {n_ctx} 词元的窗口")
    reference = reference or next(iter(files))
    order = [reference] + [lv for lv in files if lv != reference]
    from . import llamatools

    tools = llamatools.available()
    ggufs = [lv for lv in order if not str(files[lv]).startswith("hf:")]
    sweep: list[dict] = []
    if threads is None and tools and ggufs:  # as llama-bench lets you: 1 … n threads, the fastest generation
        threads, sweep = llamatools.pick_threads(files[ggufs[0]], gen=decode_tokens)
        em.emit("log", message=f"threads: {threads} (llama-bench generation at " + ", ".join(
            f"{r['threads']}: {r['tg_tps']:,.0f} ± {r['tg_sd']:,.0f} tok/s" for r in sweep) + ")")
    threads = threads or min(4, os.cpu_count() or 1)
    targets = targets_of(ids, n_ctx)
    results, per_token = [], {}
    ref_lp = ref_chat = None
    ref_ppl = None
    chat = [(list(c[0][:n_ctx]), int(c[1])) for c in (chat or []) if int(c[1]) < min(len(c[0]), n_ctx)]
    chat_targets = np.array([t for c in chat for t in c[0][c[1]:]], dtype=np.int64)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for i, lv in enumerate(order):
            em.emit("progress", step="measure", level=lv, done=i, total=len(order))
            logits, stats = measure_level(files[lv], ids, n_ctx, decode_tokens, threads, tmp, chat, tasks)
            lp = log_softmax(logits)
            nll = -lp[np.arange(len(targets)), targets]
            ppl = float(np.exp(nll.mean()))
            if ref_lp is None:
                ref_lp, ref_ppl = lp, ppl
            k = kld_stats(ref_lp, lp, targets)
            per_token[lv] = k["kl"].astype(np.float32)
            hf = str(files[lv]).startswith("hf:")
            size = stats["size_bytes"] if hf else Path(files[lv]).stat().st_size
            res = LevelResult(level=lv, file=str(files[lv]).split(":", 2)[-1], size_mb=size / 2**20,
                              bits_per_weight=(size * 8 / n_params) if n_params else float("nan"),
                              rss_mb=stats["rss_mb"], ppl=ppl, delta_ppl=ppl - ref_ppl, kl_mean=k["kl_mean"],
                              kl_p99=k["kl_p99"], top1=k["top1"], prefill_tps=stats["prefill_tps"],
                              decode_tps=stats["decode_tps"], backend="transformers" if hf else "llama.cpp",
                              greedy=stats.get("greedy"), kl_median=k["kl_median"], kl_p999=k["kl_p999"], kl_max=k["kl_max"], dp_mean=k["dp_mean"],
                              dp_rms=k["dp_rms"], prefill_sd=stats["prefill_sd"], decode_sd=stats["decode_sd"],
                              threads=stats["threads"], load_avg=stats["load_avg"],
                              model_buffer_mb=stats.get("model_buffer_mb", float("nan")),
                              kv_cache_mb=stats.get("kv_cache_mb", float("nan")))
            if tools and not hf:
                for r in llamatools.bench(files[lv], prompt=min(128, n_ctx // 2), gen=decode_tokens, threads=threads):
                    if r.get("n_gen"):
                        res.bench_tg_tps, res.bench_tg_sd = r["avg_ts"], r["stddev_ts"]
                    else:
                        res.bench_pp_tps, res.bench_pp_sd = r["avg_ts"], r["stddev_ts"]
            if chat:
                clp = log_softmax(stats["chat_logits"])
                ref_chat = clp if ref_chat is None else ref_chat
                ck = kld_stats(ref_chat, clp, chat_targets)
                res.kl_chat_mean, res.kl_chat_p99, res.top1_chat = ck["kl_mean"], ck["kl_p99"], ck["top1"]
                res.ppl_chat = float(np.exp(-clp[np.arange(len(chat_targets)), chat_targets].mean()))
            if tasks and stats.get("replies"):
                res.replies = stats["replies"]
                res.task_acc, res.task_acc_stderr, res.task_by = task_scores(tasks, res.replies)
            results.append(res)
            em.emit("level", **res.to_dict())
    em.emit("done", step="measure", levels=len(results))
    return results, {"targets": targets, "kl": per_token, "threads_sweep": sweep}


# KV-cache types llama.cpp offers on the CPU → ggml type id (bytes per element: memory.KV_BYTES)
KV_TYPES = {name: int(GGMLQuantizationType[name]) for name in ("F32", "F16", "Q8_0", "Q4_0")}  # ggml_type ids


def kv_cache_levels(path: str | Path, ids: list[int], *, n_ctx: int = 256, types: tuple[str, ...] = tuple(KV_TYPES),
                    contexts: tuple[int, ...] = (2048, 8192, 32768), threads: int | None = None,
                    bos: int | None = None) -> list[dict]:
    """One weight file with each KV-cache type: what the cache costs and what it changes.

    Per type: :func:`kld_stats`' KL mean and p99 and top-1 agreement against the reference (scored as
    :func:`measure_ladder` scores: the second half of each window), and the cache's size at ``n_ctx``
    and at each of ``contexts`` (layers × positions × key/value heads × head size × the type's bytes
    per element — llama.cpp's own arithmetic). The reference is the F32 cache with llama.cpp's
    ordinary attention (what the ladder measures; it equals transformers to ~1e-6); every other row
    runs with flash attention, which llama.cpp needs for a quantized V cache — and the first of them,
    F32 with flash attention, shows what that kernel alone changes."""
    from ..models.gguf import load

    ids = with_bos(ids, n_ctx, bos)
    wins = windows(ids, n_ctx)
    if not wins:
        raise InputError(f"the text has {len(ids)} tokens: fewer than one window of {n_ctx}",
                         zh=f"文本只有 {len(ids)} 个词元：不够一个 {n_ctx} 词元的窗口")
    for name in types:
        if name not in KV_TYPES:
            raise InputError(f"KV-cache type {name!r}: use one of {', '.join(KV_TYPES)}",
                             zh=f"KV 缓存类型 {name!r}：可选 {', '.join(KV_TYPES)}")
    targets = targets_of(ids, n_ctx)
    order = [("F32", False)] + [(t, True) for t in ("F32", *(t for t in types if t != "F32"))]
    rows, ref = [], None
    for name, flash in order:
        llm = load(path, n_ctx=n_ctx, logits_all=True, n_threads=threads, type_k=KV_TYPES[name],
                   type_v=KV_TYPES[name], flash_attn=flash)
        try:
            per_pos = kv_values_per_position(llm) * KV_BYTES[name.lower()]
            lp = log_softmax(window_logits(llm, ids, n_ctx))
        finally:
            llm.close()
        ref = lp if ref is None else ref
        k = kld_stats(ref, lp, targets)
        rows.append({"kv_type": name, "flash_attn": flash, "kl_mean": k["kl_mean"], "kl_p99": k["kl_p99"],
                     "top1": k["top1"], "bytes_per_position": per_pos,
                     **{f"mb_at_{n}": per_pos * n / 2**20 for n in (n_ctx, *contexts)}})
    return rows


# the columns of the trade-off table (the deploy lab's panel and its CSV export)
COLUMNS = ["level", "backend", "size_mb", "bits_per_weight", "rss_mb", "model_buffer_mb", "kv_cache_mb", "ppl",
           "delta_ppl", "kl_mean", "kl_median", "kl_p99", "kl_p999", "kl_max", "top1", "dp_mean", "dp_rms",
           "kl_chat_mean", "kl_chat_p99", "top1_chat", "ppl_chat", "task_acc",
           "prefill_tps", "prefill_sd", "decode_tps", "decode_sd", "bench_pp_tps", "bench_pp_sd", "bench_tg_tps",
           "bench_tg_sd", "threads", "load_avg"]


def compare_generations(files: dict, prompt: str, levels: list[str], max_new_tokens: int = 32,
                        on_level=None, stop=None) -> dict[str, str]:
    """Greedy continuations of ``prompt`` by each GGUF level (loaded one at a time), in order;
    ``on_level(level, text)`` after each, ``stop`` (a StopFlag) between levels and tokens."""
    from ..models.gguf import GGUFModel

    out: dict[str, str] = {}
    for lv in levels:
        if stop is not None and stop.is_set():
            break
        with GGUFModel(files[lv], lv) as m:
            out[lv] = m.generate(prompt, max_new_tokens=max_new_tokens, stop_flag=stop).text
        if on_level:
            on_level(lv, out[lv])
    return out


def write_table_csv(rows: list[dict], path) -> Path:
    """The measured levels as CSV (the trade-off table's columns), written atomically."""
    import csv

    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".partial")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    return path
