"""A model a learner might bring, built here offline: a randomly initialised **Qwen2**-shaped causal LM
(not the chain's Llama/InternLM2 shape) with its own byte-level BPE ``tokenizer.json`` (Qwen2's
pre-tokenizer, trained with HF ``tokenizers`` on a little real text; no ``tokenizer.model``), the chat
template in ``tokenizer_config.json`` and ``<|im_end|>`` as its end of turn — the files a Qwen2 /
Qwen2.5 checkpoint directory holds, in miniature. Row lengths are multiples of 256 (real K-quants)."""
from __future__ import annotations

from pathlib import Path

# Qwen2's pre-tokenizer split (its tokenizer.json; llama.cpp's LLAMA_VOCAB_PRE_TYPE_QWEN2 regex)
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
               r"|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|action_start|>", "<|action_end|>", "<|plugin|>",
            "<|interpreter|>"]


def build_standin(dest: Path, texts: list[str], *, vocab_size: int = 2048, seed: int = 0) -> Path:
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from puyu_lab.models.template import CHAT_TEMPLATE

    dest.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  additional_special_tokens=SPECIALS[3:], clean_up_tokenization_spaces=False,
                                  model_max_length=4096)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(str(dest))
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=256, intermediate_size=768, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, bos_token_id=None, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(dest))
    return dest
