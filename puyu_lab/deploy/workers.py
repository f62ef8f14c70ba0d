"""The measuring processes: each level of a ladder is measured in a process of its own, so the memory it reports is
that level's alone (the resident set after loading minus the one after the imports).

    python -m puyu_lab.deploy.workers <job.json>

The job file (written by :func:`puyu_lab.deploy.measure.measure_level`) names the worker and its settings:
``{"kind": "gguf", "path", "ids_file", "out_dir", "n_ctx", "decode_tokens", "threads"}`` or ``{"kind": "hf",
"model_dir", "variant", …}``. A worker writes ``logits.npy`` (the scored windows), ``logits_chat.npy`` (the reply
rows of the chat conversations) and ``stats.json`` into ``out_dir``. Speed is a real greedy generation, repeated
(mean ± sd), with the load average recorded beside it.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .lmmath import chat_rows, scored, windows
from .memory import KV_BYTES


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


SPEED_REPEATS = 3  # timed greedy generations per level (after one warm-up), as llama-bench repeats (-r)


def kv_values_per_position(llm) -> int:
    """Values the KV cache holds per cached token: keys and values × layers × key/value heads × head size."""
    import llama_cpp

    m = llm.model
    head = llama_cpp.llama_model_n_embd(m) // llama_cpp.llama_model_n_head(m)
    return 2 * llama_cpp.llama_model_n_layer(m) * llama_cpp.llama_model_n_head_kv(m) * head


def _llama_sizes(llm) -> dict:
    """What llama.cpp itself says a loaded model takes: its weights buffer and the KV cache of this
    context (in the cache's type — F32 here)."""
    import llama_cpp

    kv_bytes = kv_values_per_position(llm) * llm.n_ctx() * KV_BYTES["f32"]
    return {"model_buffer_mb": llama_cpp.llama_model_size(llm.model) / 2**20, "kv_cache_mb": kv_bytes / 2**20}


def window_logits(llm, ids: list[int], n_ctx: int) -> np.ndarray:
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


def gguf_worker(path: str, ids_file: str, out_dir: str, n_ctx: int, decode_tokens: int, threads: int) -> None:
    import llama_cpp  # noqa: F401  (imported before the baseline: the library is not the model)

    from ..models.gguf import GGUFModel, load

    ids, chat, items = _read_ids(ids_file)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    llm = load(path, n_ctx=n_ctx, logits_all=True, n_threads=threads)
    load_s = time.perf_counter() - t0
    rss = _rss_mb() - rss0  # the model loaded, before any logits are copied out
    sizes = _llama_sizes(llm)
    np.save(Path(out_dir) / "logits.npy", window_logits(llm, ids, n_ctx))
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


def hf_worker(model_dir: str, variant: str, ids_file: str, out_dir: str, n_ctx: int, decode_tokens: int,
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


JOB_KINDS = ("gguf", "hf")


def run_job(job: dict) -> None:
    """Run the worker a job file names (its keys as in the module's docstring)."""
    common = (job["ids_file"], job["out_dir"], int(job["n_ctx"]), int(job["decode_tokens"]), int(job["threads"]))
    if job.get("kind") == "gguf":
        gguf_worker(job["path"], *common)
    elif job.get("kind") == "hf":
        hf_worker(job["model_dir"], job["variant"], *common)
    else:
        raise ValueError(f"job kind {job.get('kind')!r}: use one of {', '.join(JOB_KINDS)}")


if __name__ == "__main__":
    run_job(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
