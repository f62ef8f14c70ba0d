"""Measure a quantization ladder: size, memory, perplexity, KL from the reference, top-1, speed.

As llama.cpp's ``llama-perplexity`` measures them, and equal to its figures (a test): the text is cut
into windows of ``n_ctx`` tokens, each window's first token replaced by BOS when the vocabulary adds
one, and only the tokens after the first half are scored (:func:`scored`: positions ``n_ctx/2 + 1`` …
``n_ctx − 1`` of each window, every one with at least ``n_ctx/2`` tokens of context); KL divergence is ``Σ p_ref·(log p_ref − log p_q)`` per scored token
against the reference level's logits, and top-1 agreement is how often both pick the same token.
:func:`kld_stats` gives the rest of what ``llama-perplexity --kl-divergence`` prints: KL median,
99th / 99.9th percentile and maximum, "same top p", and Δp (the change in the probability of the
token that really comes next) as its mean and RMS.

Each level runs in its own process (``python -m puyu_lab.deploy.measure``), so the memory it reports
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
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from gguf import GGMLQuantizationType

from ..events import Emitter, Event
from ..models.base import log_softmax
from .memory import KV_BYTES


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def windows(ids: list[int], n_ctx: int, max_windows: int | None = None) -> list[list[int]]:
    w = [ids[i:i + n_ctx] for i in range(0, len(ids) - n_ctx + 1, n_ctx)]
    return w[:max_windows] if max_windows else w


def with_bos(ids: list[int], n_ctx: int, bos: int | None) -> list[int]:
    """``ids`` with the first token of every window replaced by ``bos`` (llama-perplexity does this when
    the vocabulary adds a BOS: each window then starts as a document would); unchanged without one."""
    if bos is None:
        return list(ids)
    out = list(ids)
    for i in range(0, len(out) - n_ctx + 1, n_ctx):
        out[i] = bos
    return out


def scored(n_ctx: int) -> slice:
    """The logits of a window that are scored: positions ``n_ctx/2`` … ``n_ctx − 2``, predicting the
    tokens ``n_ctx/2 + 1`` … ``n_ctx − 1`` (llama-perplexity's ``first = n_ctx/2`` and its
    ``n_ctx − 1 − first`` tokens per chunk)."""
    return slice(n_ctx // 2, n_ctx - 1)


def targets_of(ids: list[int], n_ctx: int) -> np.ndarray:
    """The tokens the scored logits predict, window after window."""
    s = scored(n_ctx)
    return np.concatenate([np.asarray(w[s.start + 1:s.stop + 1]) for w in windows(ids, n_ctx)])


SPEED_REPEATS = 3  # timed greedy generations per level (after one warm-up), as llama-bench repeats (-r)


def _kv_values_per_position(llm) -> int:
    """Values the KV cache holds per cached token: keys and values × layers × key/value heads × head size."""
    import llama_cpp

    m = llm.model
    head = llama_cpp.llama_model_n_embd(m) // llama_cpp.llama_model_n_head(m)
    return 2 * llama_cpp.llama_model_n_layer(m) * llama_cpp.llama_model_n_head_kv(m) * head


def _llama_sizes(llm) -> dict:
    """What llama.cpp itself says a loaded model takes: its weights buffer and the KV cache of this
    context (in the cache's type — F32 here)."""
    import llama_cpp

    kv_bytes = _kv_values_per_position(llm) * llm.n_ctx() * KV_BYTES["f32"]
    return {"model_buffer_mb": llama_cpp.llama_model_size(llm.model) / 2**20, "kv_cache_mb": kv_bytes / 2**20}


def _window_logits(llm, ids: list[int], n_ctx: int) -> np.ndarray:
    """The logits that predict the second half of each window of ``ids`` (llm made with ``logits_all``)."""
    out = []
    for w in windows(ids, n_ctx):
        llm.reset()
        llm.eval(w)
        # a copy: llm.scores is a view of a buffer the next eval() overwrites
        out.append(np.array(llm.scores[scored(n_ctx)], dtype=np.float32, copy=True))
    return np.concatenate(out)


def _speed(model, prompt: list[int], decode_tokens: int) -> dict:
    """Prefill and decode tokens/s over SPEED_REPEATS real greedy generations (mean and sd), the
    greedy tokens, and the load average they ran under."""
    greedy_speed(model, prompt, min(8, decode_tokens))  # warm-up: caches, thread pool
    runs = [greedy_speed(model, prompt, decode_tokens) for _ in range(SPEED_REPEATS)]
    pre, dec = np.array([r[0] for r in runs]), np.array([r[1] for r in runs])
    return {"prefill_tps": float(pre.mean()), "prefill_sd": float(pre.std(ddof=1)), "decode_tps": float(dec.mean()),
            "decode_sd": float(dec.std(ddof=1)), "greedy": runs[-1][2], "load_avg": os.getloadavg()[0]}


def _read_ids(ids_file: str) -> tuple[list[int], list, list]:
    d = json.loads(Path(ids_file).read_text())
    return (d["ids"], d.get("chat") or [], d.get("tasks") or []) if isinstance(d, dict) else (d, [], [])


def answer_tasks(model, items: list[dict]) -> list[str]:
    """Each held-out task item's greedy reply (special tokens kept: a tool call shows as one)."""
    return [model.generate(it["messages"], max_new_tokens=it["max_new_tokens"], stop=tuple(it.get("stop") or ()),
                           keep_special=True).text for it in items]


def task_ok(item: dict, reply: str) -> bool:
    """Whether ``reply`` solves ``item`` by its ``match`` (contracts.scoring: the eval stage's rule too)."""
    from ..contracts.scoring import answer_matches

    return answer_matches(item["match"], reply, item["answer"])


def task_scores(items: list[dict], replies: list[str]) -> tuple[float, dict]:
    """The share of items solved, overall and per task."""
    ok = [task_ok(it, r) for it, r in zip(items, replies)]
    by: dict[str, list[bool]] = {}
    for it, o in zip(items, ok):
        by.setdefault(it["task"], []).append(o)
    return float(np.mean(ok)), {k: float(np.mean(v)) for k, v in by.items()}


def chat_rows(conv: tuple[list[int], int]) -> slice:
    """The logits rows of a conversation ``(ids, start)`` that predict its reply: ``ids[start:]``."""
    ids, start = conv
    return slice(start - 1, len(ids) - 1)


def _worker(path: str, ids_file: str, out_dir: str, n_ctx: int, decode_tokens: int, threads: int) -> None:
    import llama_cpp  # noqa: F401  (imported before the baseline: the library is not the model)

    from ..models.gguf import GGUFModel, load

    ids, chat, items = _read_ids(ids_file)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    llm = load(path, n_ctx=n_ctx, logits_all=True, n_threads=threads)
    load_s = time.perf_counter() - t0
    rss = _rss_mb() - rss0  # the model loaded, before any logits are copied out
    sizes = _llama_sizes(llm)
    np.save(Path(out_dir) / "logits.npy", _window_logits(llm, ids, n_ctx))
    if chat:  # each conversation from its start, as a server sees it; the rows that predict the reply
        rows = []
        for conv in chat:
            llm.reset()
            llm.eval(conv[0])
            rows.append(np.array(llm.scores[chat_rows(conv)], dtype=np.float32, copy=True))
        np.save(Path(out_dir) / "logits_chat.npy", np.concatenate(rows))
    llm.close()
    # speed, without per-position logits (what a server does): real greedy generations
    m = GGUFModel(path, llm=load(path, n_ctx=n_ctx, n_threads=threads))
    speed = _speed(m, ids[:min(128, n_ctx // 2)], decode_tokens)
    # what the level still does: held-out tasks, greedy (in a context that holds the longest of them)
    need = max((len(m.prompt_ids(it["messages"])[1]) + it["max_new_tokens"] for it in items), default=0)
    tm = m if need <= n_ctx else GGUFModel(path, llm=load(path, n_ctx=need, n_threads=threads))
    replies = answer_tasks(tm, items)
    if tm is not m:
        tm.close()
    m.close()
    Path(out_dir, "stats.json").write_text(json.dumps({"rss_mb": rss, "load_s": load_s, **sizes, **speed,
                                                       "threads": threads, "replies": replies}))


def greedy_speed(model, prompt: list[int], decode_tokens: int) -> tuple[float, float, list[int]]:
    """Prefill and decode tokens/s of a real greedy generation of ``decode_tokens`` tokens from the
    token ids ``prompt`` (the model layer's decode loop: each next token is the argmax of the last
    position's real logits), and its tokens."""
    g = model.generate(list(prompt), max_new_tokens=decode_tokens, ignore_eos=True)
    decode_s = g.seconds - g.prefill_seconds
    return len(prompt) / g.prefill_seconds, (len(g.tokens) - 1) / decode_s, g.tokens


HF_VARIANTS = ("HF fp32", "bnb int8", "bnb nf4", "torch int8")


def load_hf_variant(model_dir: str, variant: str):
    """The transformers-side rows: fp32, bitsandbytes int8 / nf4, torch dynamic int8 (where the
    installed torch still offers ``torch.ao.quantization.quantize_dynamic``)."""
    import warnings

    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if variant == "HF fp32":
        return AutoModelForCausalLM.from_pretrained(model_dir).eval()
    if variant == "bnb int8":
        q = BitsAndBytesConfig(load_in_8bit=True)
    elif variant == "bnb nf4":
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    elif variant == "torch int8":
        if not hasattr(torch.ao.quantization, "quantize_dynamic"):
            raise RuntimeError("this torch no longer offers torch.ao.quantization.quantize_dynamic")
        m = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated in favour of torchao, still works
            return torch.ao.quantization.quantize_dynamic(m, {torch.nn.Linear}, dtype=torch.qint8)
    else:
        raise ValueError(f"unknown variant {variant!r}; one of {HF_VARIANTS}")
    return AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=q, device_map={"": "cpu"}).eval()


def _weights_bytes(model) -> int:

    n = sum(p.numel() * p.element_size() for p in model.parameters())
    n += sum(b.numel() * b.element_size() for b in model.buffers())
    for mod in model.modules():  # torch dynamic int8 keeps its weights in packed params, not parameters
        pk = getattr(mod, "_packed_params", None)
        if pk is not None and hasattr(pk, "_weight_bias"):
            w, b = pk._weight_bias()
            n += w.numel() * w.element_size() + (b.numel() * b.element_size() if b is not None else 0)
    return n


def _worker_hf(model_dir: str, variant: str, ids_file: str, out_dir: str, n_ctx: int, decode_tokens: int,
               threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    # imported before the baseline — the libraries are not the model (transformers loads its model code lazily)
    import transformers.models.llama.modeling_llama  # noqa: F401
    if variant.startswith("bnb"):
        import bitsandbytes  # noqa: F401

    from ..models.hf import HFModel
    from ..models.tokenizer import load_tokenizer

    ids, chat, _ = _read_ids(ids_file)  # held-out tasks: GGUF levels only (a bnb generation is slow on a CPU)
    rss0 = _rss_mb()
    model = load_hf_variant(model_dir, variant)
    rss = _rss_mb() - rss0
    logits = []
    with torch.no_grad():
        for w in windows(ids, n_ctx):
            out = model(input_ids=torch.tensor([w])).logits[0]
            logits.append(out[scored(n_ctx)].float().numpy())
        np.save(Path(out_dir) / "logits.npy", np.concatenate(logits))
        if chat:
            np.save(Path(out_dir) / "logits_chat.npy", np.concatenate(
                [model(input_ids=torch.tensor([c[0]])).logits[0][chat_rows(c)].float().numpy() for c in chat]))
        speed = _speed(HFModel(model, load_tokenizer(model_dir)), ids[:min(128, n_ctx // 2)], decode_tokens)
    Path(out_dir, "stats.json").write_text(json.dumps({"rss_mb": rss, **speed, "size_bytes": _weights_bytes(model),
                                                       "threads": threads}))


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
    # held-out tasks answered greedily (GGUF rows; measure's task_items): the share solved, overall and per task,
    # and the replies
    task_acc: float = float("nan")
    task_by: dict | None = None
    replies: list[str] | None = None

    def to_dict(self) -> dict:
        """The fields, with None where a figure was not measured (NaN is not JSON)."""
        return {k: (None if isinstance(v, float) and v != v else v) for k, v in asdict(self).items()}


def kld_stats(ref_lp: np.ndarray, lp: np.ndarray, targets: np.ndarray) -> dict:
    """The statistics ``llama-perplexity --kl-divergence`` prints, from per-position log-probabilities
    of the reference (``ref_lp``) and the quantized model (``lp``) and the tokens that came next:
    KL(ref ‖ q) per position (mean, median, 99th and 99.9th percentile, max), the share of positions
    where both pick the same top token ("same top p"), and Δp = p_q(next) − p_ref(next) (mean and RMS,
    in percent)."""
    kl = np.maximum((np.exp(ref_lp) * (ref_lp - lp)).sum(-1), 0.0)
    rows = np.arange(len(targets))
    dp = np.exp(lp[rows, targets]) - np.exp(ref_lp[rows, targets])
    return {"kl": kl, "kl_mean": float(kl.mean()), "kl_median": float(np.median(kl)),
            "kl_p99": float(np.quantile(kl, 0.99)), "kl_p999": float(np.quantile(kl, 0.999)), "kl_max": float(kl.max()),
            "top1": float((ref_lp.argmax(-1) == lp.argmax(-1)).mean()),
            "dp_mean": float(dp.mean() * 100), "dp_rms": float(np.sqrt((dp ** 2).mean()) * 100)}


def measure_level(path: str | Path, ids: list[int], n_ctx: int, decode_tokens: int, threads: int,
                  tmp: Path, chat: list | None = None, tasks: list | None = None) -> tuple[np.ndarray, dict]:
    """One level in its own process: the logits of ``ids``' scored windows and its stats (``stats["chat_logits"]``:
    the reply rows of the ``chat`` conversations, when given; ``stats["replies"]``: a GGUF level's greedy replies to
    the ``tasks`` items)."""
    ids_file = tmp / "ids.json"
    if not ids_file.exists():
        ids_file.write_text(json.dumps({"ids": ids, "chat": chat or [], "tasks": tasks or []}))
    out = Path(tempfile.mkdtemp(dir=tmp))
    if str(path).startswith("hf:"):  # hf:<variant>:<model dir>
        _, variant, model_dir = str(path).split(":", 2)
        cmd = [sys.executable, "-m", "puyu_lab.deploy.measure", "--hf", model_dir, variant, str(ids_file), str(out),
               str(n_ctx), str(decode_tokens), str(threads)]
    else:
        cmd = [sys.executable, "-m", "puyu_lab.deploy.measure", str(path), str(ids_file), str(out), str(n_ctx),
               str(decode_tokens), str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
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
        raise ValueError(f"the evaluation text has {len(ids)} tokens: fewer than one window of {n_ctx}")
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
            res = LevelResult(lv, str(files[lv]).split(":", 2)[-1], size / 2**20,
                              (size * 8 / n_params) if n_params else float("nan"), stats["rss_mb"], ppl, ppl - ref_ppl,
                              k["kl_mean"], k["kl_p99"], k["top1"], stats["prefill_tps"],
                              stats["decode_tps"], "transformers" if hf else "llama.cpp", stats.get("greedy"),
                              kl_median=k["kl_median"], kl_p999=k["kl_p999"], kl_max=k["kl_max"], dp_mean=k["dp_mean"],
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
                res.task_acc, res.task_by = task_scores(tasks, res.replies)
            results.append(res)
            em.emit("level", **res.to_dict())
    em.emit("done", step="measure", levels=len(results))
    return results, {"targets": targets, "kl": per_token, "threads_sweep": sweep}


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "--hf":
        _worker_hf(a[1], a[2], a[3], a[4], int(a[5]), int(a[6]), int(a[7]))
    else:
        _worker(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]))


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
        raise ValueError(f"the text has {len(ids)} tokens: fewer than one window of {n_ctx}")
    for name in types:
        if name not in KV_TYPES:
            raise ValueError(f"KV-cache type {name!r}: use one of {', '.join(KV_TYPES)}")
    targets = targets_of(ids, n_ctx)
    order = [("F32", False)] + [(t, True) for t in ("F32", *(t for t in types if t != "F32"))]
    rows, ref = [], None
    for name, flash in order:
        llm = load(path, n_ctx=n_ctx, logits_all=True, n_threads=threads, type_k=KV_TYPES[name],
                   type_v=KV_TYPES[name], flash_attn=flash)
        try:
            per_pos = _kv_values_per_position(llm) * KV_BYTES[name.lower()]
            lp = log_softmax(_window_logits(llm, ids, n_ctx))
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
