"""Memory what-if: weights at a precision + KV cache for a context, from a model's ``config.json``.

Weights: parameters × bits per weight (llama.cpp's effective bits, block scales included).
KV cache: 2 (K and V) × layers × context × batch × kv_heads × head_dim × bytes per element.
Real use adds activations and runtime buffers: we add a stated overhead, not a guess per engine.
"""
from __future__ import annotations

import json
from pathlib import Path

# effective bits per weight (llama.cpp's table for Llama-family models) and the transformers side
WEIGHT_BITS = {"fp32": 32.0, "bf16/fp16": 16.0, "Q8_0 / int8": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.69, "Q4_K_M": 4.85,
               "nf4 (QLoRA)": 4.13, "Q3_K_M": 3.91, "Q2_K": 3.35}
KV_BYTES = {"f32": 4.0, "f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
GPUS_GB = (8, 24, 80)
OVERHEAD = 0.10  # activations, runtime buffers: +10 % (stated, rough)

# the published configs of two real InternLM2 chat models (config.json fields used here)
KNOWN = {
    "InternLM2-chat-1.8B": {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16,
                            "num_key_value_heads": 8, "intermediate_size": 8192, "vocab_size": 92544,
                            "tie_word_embeddings": False},
    "InternLM2-chat-7B": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                          "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 92544,
                          "tie_word_embeddings": False},
}


def load_config(path_or_dict) -> dict:
    if isinstance(path_or_dict, dict):
        return path_or_dict
    p = Path(path_or_dict)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        from ..errors import MissingInput

        raise MissingInput(f"{p}: no config.json", zh=f"{p}：没有 config.json")
    return json.loads(p.read_text(encoding="utf-8"))


def count_parameters(cfg: dict) -> int:
    """Parameters of a Llama-family decoder (InternLM2's wqkv/w1-3 have the same shapes)."""
    d, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    h = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", h)
    hd = cfg.get("head_dim") or d // h
    f, V = cfg["intermediate_size"], cfg["vocab_size"]
    attn = d * h * hd + 2 * d * kv * hd + h * hd * d
    per_layer = attn + 3 * d * f + 2 * d
    emb = V * d
    return emb + L * per_layer + d + (0 if cfg.get("tie_word_embeddings") else emb)


def estimate(cfg: dict, weights: str = "bf16/fp16", context: int = 4096, batch: int = 1, kv: str = "f16") -> dict:
    n = count_parameters(cfg)
    w = n * WEIGHT_BITS[weights] / 8
    h = cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // h
    kvh = cfg.get("num_key_value_heads", h)
    kv_bytes = 2 * cfg["num_hidden_layers"] * context * batch * kvh * hd * KV_BYTES[kv]
    total = (w + kv_bytes) * (1 + OVERHEAD)
    gb = 1024 ** 3
    return {"parameters": n, "weights_gb": w / gb, "kv_cache_gb": kv_bytes / gb, "total_gb": total / gb,
            "fits": {g: total / gb <= g for g in GPUS_GB}}
