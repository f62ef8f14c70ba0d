"""The tiny InternLM2-style decoder, as a transformers Llama config.

InternLM2 is a Llama-family decoder: RMSNorm, SwiGLU MLP, rotary position embeddings and
grouped-query attention, untied input/output embeddings. Every weight row is a multiple of 256
so that llama.cpp's K-quants (blocks of 256) apply to every tensor in the deploy lab.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelPreset:
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    block_size: int  # training sequence length
    rope_theta: float = 1_000_000.0  # InternLM2's base

    def __post_init__(self):
        from ..errors import InputError

        for name in ("hidden_size", "intermediate_size"):
            if getattr(self, name) % 256:
                raise InputError(f"{name}={getattr(self, name)} is not a multiple of 256: llama.cpp's K-quants "
                                 "would silently give those tensors a 32-block type (Q5_0, Q8_0, IQ4_NL …) instead",
                                 zh=f"{name}={getattr(self, name)} 不是 256 的倍数：llama.cpp 的 K-quant 量化会悄悄"
                                    "给这些张量换成 32 元素分块的类型（Q5_0、Q8_0、IQ4_NL …）")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise InputError("hidden_size must divide into heads, and heads into key/value groups",
                             zh="hidden_size 必须能被注意力头数整除，头数也必须能被键/值组数（num_kv_heads）整除")

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, ModelPreset] = {
    # 5.2 M parameters: trains inside the quick profile's budget on 2 CPU cores. A 4,000-piece vocabulary: on
    # ~1 M training tokens a bigger one leaves most embedding rows barely trained (and its output
    # head costs time); Chinese still gets ~1.2 characters per token.
    "quick": ModelPreset(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=768,
                         vocab_size=4000, block_size=256),
    # 20.8 M parameters (12.6 M outside the embeddings), 512-token context: its 1,000 steps are 4.1 M tokens,
    # 2.3 passes over the full corpus (its time on 2 cores: README, Profiles). Eight layers learn no more per
    # minute here (each step is slower by about what they add): on a CPU budget a wider, shallower model that
    # sees more tokens wins.
    "full": ModelPreset(hidden_size=512, num_layers=4, num_heads=8, num_kv_heads=4, intermediate_size=1536,
                        vocab_size=8000, block_size=512),
    # 110 M parameters: minutes on a GPU
    "gpu": ModelPreset(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4, intermediate_size=2048,
                       vocab_size=16000, block_size=1024),
}


def llama_config(preset: ModelPreset, *, bos_token_id: int = 1, eos_token_id: int = 2):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=preset.vocab_size, hidden_size=preset.hidden_size, intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_layers, num_attention_heads=preset.num_heads,
        num_key_value_heads=preset.num_kv_heads, max_position_embeddings=max(2048, preset.block_size),
        rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": preset.rope_theta},
        bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=eos_token_id,
    )


def size_arithmetic(p: ModelPreset) -> dict:
    """Parameters by part and training FLOPs per token (≈ 6·N plus attention), as in the lab."""
    d, L, f, V = p.hidden_size, p.num_layers, p.intermediate_size, p.vocab_size
    head = d // p.num_heads
    attn = d * d + 2 * d * (p.num_kv_heads * head) + d * d  # q, k, v, o
    mlp = 3 * d * f  # gate, up, down
    norms = 2 * d
    per_layer = attn + mlp + norms
    emb = V * d
    total = emb + L * per_layer + d + emb  # embeddings, layers, final norm, lm head (untied)
    non_emb = L * per_layer + d
    attn_flops = 2 * 2 * L * p.block_size * d  # scores and weighted sum, per token, forward
    return {
        "parameters": total, "non_embedding_parameters": non_emb, "embedding_parameters": 2 * emb,
        "per_layer": per_layer, "attention_per_layer": attn, "mlp_per_layer": mlp,
        "train_flops_per_token": 6 * (total - emb) + 3 * attn_flops,
    }
