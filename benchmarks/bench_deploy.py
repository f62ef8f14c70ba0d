"""Deploy: the whole ladder measured, and llama.cpp Q4_K_M decode vs transformers fp32, same model and prompt."""
from __future__ import annotations

import tempfile
import time


DECODE = 64


def hf_decode_tps(model_dir, prompt_ids: list[int], n: int = DECODE) -> tuple[float, float]:
    """transformers fp32, greedy with its KV cache: (prefill tokens/s, decode tokens/s)."""
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        m(ids)  # warm-up
        t = time.perf_counter()
        out = m(ids, use_cache=True)
        prefill = len(prompt_ids) / (time.perf_counter() - t)
        past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        t = time.perf_counter()
        for _ in range(n):
            out = m(nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        decode = n / (time.perf_counter() - t)
    return prefill, decode


def main() -> str:
    from puyu_lab.deploy.measure import kv_cache_levels, measure_ladder
    from puyu_lab.deploy.pipeline import build_ladder, eval_ids, ladder_files
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.workspace import Workspace
    from common import tiny_base

    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(d)
        cfg = tiny_base(ws, 60)
        t0 = time.perf_counter()
        build_ladder(ws, "model/base")
        ladder_s = time.perf_counter() - t0
        tok = load_tokenizer(ws.get("model/base").path)
        ids = eval_ids(ws, tok, 2048)
        rows, detail = measure_ladder(ladder_files(ws, "model/base"), ids, n_ctx=256, decode_tokens=DECODE,
                                      n_params=ws.get("model/base").metrics["parameters"], bos=tok.bos_token_id)
        hf_pre, hf_dec = hf_decode_tps(ws.get("model/base").path, ids[:128])
        kv = kv_cache_levels(ladder_files(ws, "model/base")["Q4_K_M"], ids, n_ctx=256, bos=tok.bos_token_id)
        servers = serve_bench(ladder_files(ws, "model/base"),
                              [i for i in (tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")) if i is not None])
    lines = [f"model: quick preset ({cfg.preset.hidden_size}d × {cfg.preset.num_layers} layers, 5.2 M parameters); "
             f"convert + quantize the whole ladder: {ladder_s:.1f} s; held-out text: {len(ids)} tokens, windows of 256",
             f"{'level':<8}{'MB':>7}{'bits/w':>8}{'RSS MB':>8}{'PPL':>10}{'ΔPPL':>9}{'KL mean':>10}{'KL p99':>10}"
             f"{'KL max':>10}{'Δp RMS %':>10}{'top-1':>8}{'prefill/s':>11}{'decode/s (± sd)':>18}"
             f"{'llama-bench tg/s (± sd)':>26}"]
    for r in rows:
        lines.append(f"{r.level:<8}{r.size_mb:>7.2f}{r.bits_per_weight:>8.2f}{r.rss_mb:>8.1f}{r.ppl:>10.2f}"
                     f"{r.delta_ppl:>9.3f}{r.kl_mean:>10.2e}{r.kl_p99:>10.2e}{r.kl_max:>10.2e}{r.dp_rms:>10.3f}"
                     f"{r.top1:>8.1%}{r.prefill_tps:>11,.0f}{r.decode_tps:>11,.0f} ± {r.decode_sd:<5,.0f}"
                     f"{r.bench_tg_tps:>19,.0f} ± {r.bench_tg_sd:<5,.0f}")
    q4 = next(r for r in rows if r.level == "Q4_K_M")
    lines.append(f"{'HF fp32':<8}{'':>7}{'32':>8}{'':>8}{'':>10}{'':>9}{'':>10}{'':>10}{'':>10}{'':>10}{'':>8}"
                 f"{hf_pre:>11,.0f}{hf_dec:>11,.0f}")
    lines.append(f"speed: {rows[0].threads} threads (llama-bench's fastest generation: " + ", ".join(
                 f"{s['threads']} → {s['tg_tps']:,.0f} ± {s['tg_sd']:,.0f}" for s in detail["threads_sweep"])
                 + "), 3 greedy generations per level after a warm-up through the Python binding; load average "
                 f"{min(r.load_avg for r in rows):.1f}–{max(r.load_avg for r in rows):.1f} while measuring")
    lines.append(f"Q4_K_M decode / transformers fp32 decode (same model, same 128-token prompt, {DECODE} greedy tokens): "
                 f"{q4.decode_tps / hf_dec:.2f}× (aim ≥ 3×)")
    lines += ["", "KV cache on the Q4_K_M weights (KL from the F32 cache with ordinary attention; the others with "
                  "flash attention, which a quantized V cache needs)",
              f"{'cache':<8}{'flash':>6}{'KL mean':>10}{'KL p99':>10}{'top-1':>8}{'B/token':>9}{'MB at 32k':>11}"]
    for r in kv:
        lines.append(f"{r['kv_type']:<8}{'yes' if r['flash_attn'] else 'no':>6}{r['kl_mean']:>10.2e}{r['kl_p99']:>10.2e}"
                     f"{r['top1']:>8.1%}{r['bytes_per_position']:>9,.0f}{r['mb_at_32768']:>11.1f}")
    lines += ["", f"OpenAI-compatible servers: {SERVE_REQUESTS} requests per client (and one streamed, "
                  "for the time to the first token), "
                  f"{SERVE_TOKENS} new tokens each (end tokens biased off), 2 threads; llama-server with {SERVE_SLOTS} slots and continuous "
                  "batching, llama_cpp.server one request at a time. Q8_0 has a tiled matrix kernel on the CPU "
                  "(llamafile's sgemm) that a batch shares; Q4_K_M's K-quant rows are multiplied per sequence",
              f"{'server · level':<27}{'clients':>8}{'req/s':>8}{'tok/s':>9}{'× 1 client':>11}{'TTFT p50':>10}{'TTFT p95':>10}"
              f"{'lat p50':>9}{'lat p95':>9}"]
    for kind, rs in servers.items():
        one = rs[0]["tokens_per_s"]
        for r in rs:
            lines.append(f"{kind:<27}{r['clients']:>8}{r['requests_per_s']:>8.1f}{r['tokens_per_s']:>9,.0f}"
                         f"{r['tokens_per_s'] / one:>10.2f}×{r['ttft_p50_s']:>9.3f}s{r['ttft_p95_s']:>9.3f}s"
                         f"{r['p50_s']:>8.2f}s{r['p95_s']:>8.2f}s")
    return "\n".join(lines)


SERVE_REQUESTS, SERVE_TOKENS, SERVE_SLOTS = 3, 512, 4
PROMPTS = ["你是谁？", "今天天气怎么样？", "请介绍一下北京。", "人民日报报道了什么？", "What is a language model?",
           "写一句新年祝福。", "十二乘以七等于多少？", "推荐一本书。"]


def serve_bench(files: dict, stop_ids: list[int]) -> dict:
    """llama-server (continuous batching, parallel slots) on Q8_0 and Q4_K_M, and llama_cpp.server on Q8_0, under
    1, 2, 4, 8 clients; every request generates its SERVE_TOKENS (the end tokens ``stop_ids`` get logit_bias −100,
    on both servers)."""
    from puyu_lab.deploy.serve import Server, concurrency_bench

    out = {}
    for kind, level in (("llama-server", "Q8_0"), ("llama-server", "Q4_K_M"), ("llama_cpp.server", "Q8_0")):
        with Server(files[level], kind=kind, n_ctx=SERVE_TOKENS + 64, threads=2, parallel=SERVE_SLOTS) as s:
            c = s.client()
            c.extra_body = {"logit_bias": {str(i): -100 for i in stop_ids}}
            concurrency_bench(c, PROMPTS, clients=(1,), requests_per_client=1, max_new_tokens=8)  # warm-up
            out[f"{kind} · {level}"] = concurrency_bench(c, PROMPTS, clients=(1, 2, 4, 8), requests_per_client=SERVE_REQUESTS,
                                          max_new_tokens=SERVE_TOKENS)
    return out


if __name__ == "__main__":
    print(main())
