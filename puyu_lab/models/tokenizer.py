"""Reading and writing a tokenizer directory (transformers files plus what llama.cpp's converter reads).

The tokenizer is trained in the pretrain stage; every later stage and every model backend loads it
through :func:`load_tokenizer`, so this lives in the model layer, not in a stage. The special tokens
are the chat format's (:mod:`puyu_lab.models.template`)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputError

SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<|action_start|>", "<|action_end|>", "<|plugin|>",
                  "<|interpreter|>"]
BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"



def _added_tokens() -> dict:
    return {str(i + 3): {"content": tok, "lstrip": False, "normalized": False, "rstrip": False,
                         "single_word": False, "special": True} for i, tok in enumerate(SPECIAL_TOKENS)}


def save_tokenizer(tok, out_dir: str | os.PathLike, spm_model: str | os.PathLike | None = None) -> None:
    """``tok.save_pretrained`` plus what llama.cpp's converter reads: ``tokenizer.model`` and the
    special tokens in ``tokenizer_config.json``'s ``added_tokens_decoder`` (transformers 5 no longer
    writes it; without it the GGUF marks <|im_start|> … as plain text and llama.cpp splits them)."""
    out_dir = Path(out_dir)
    tok.save_pretrained(str(out_dir))
    if spm_model is not None and Path(spm_model).resolve() != (out_dir / "tokenizer.model").resolve():
        import shutil

        shutil.copy(spm_model, out_dir / "tokenizer.model")
    cfg_file = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    cfg.setdefault("added_tokens_decoder", {}).update(_added_tokens())
    cfg_file.write_text(json.dumps(cfg, ensure_ascii=False, indent=1), encoding="utf-8")


def write_hf_files(out_dir: Path) -> None:
    """tokenizer_config.json and special_tokens_map.json, then the fast tokenizer.json built from them."""
    added = _added_tokens()
    config = {
        "tokenizer_class": "LlamaTokenizer", "bos_token": BOS, "eos_token": EOS, "unk_token": UNK,
        "pad_token": EOS, "add_bos_token": True, "add_eos_token": False, "legacy": True,
        "add_prefix_space": False, "clean_up_tokenization_spaces": False, "model_max_length": 4096,
        "additional_special_tokens": SPECIAL_TOKENS, "added_tokens_decoder": added,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": EOS,
         "additional_special_tokens": SPECIAL_TOKENS}, ensure_ascii=False, indent=1), encoding="utf-8")



def load_tokenizer(path: str | os.PathLike, *, trust_remote_code: bool = False):
    """An ``AutoTokenizer`` from a tokenizer or model directory — a sentencepiece ``tokenizer.model``
    (the chain's, Llama, InternLM2) or a ``tokenizer.json`` (Qwen2, Llama 3 …) — with one clear error
    naming the directory when it is broken. ``trust_remote_code`` runs the directory's own tokenizer
    code (InternLM2's hub checkpoints ship one); only for a model you trust."""
    from transformers import AutoTokenizer

    path = Path(path)
    model = path / "tokenizer.model"
    own = path / "tokenizer.json"
    if not model.is_file() and not own.is_file():
        raise InputError(f"{path}: no tokenizer here (neither tokenizer.model nor tokenizer.json); for the chain's "
                         "own model run labs/02_pretrain.ipynb (the tokenizer step), for a model you bring give its "
                         "checkpoint directory",
                         zh=f"{path}：这里没有分词器（既没有 tokenizer.model，也没有 tokenizer.json）；全链路自己的模型"
                            "请运行 labs/02_pretrain.ipynb（训练分词器那一步），自带的模型请给出它的检查点目录")
    if model.is_file():
        check_sentencepiece(model)
    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as exc:
        spm_only = (path / "tokenizer.model").is_file() and not own.is_file()
        fix = ("retrain it in labs/02_pretrain.ipynb" if spm_only
               else "check the checkpoint's tokenizer files (tokenizer.json, tokenizer_config.json)")
        fix_zh = ("请在 labs/02_pretrain.ipynb 中重新训练它" if spm_only
                  else "请检查检查点中的分词器文件（tokenizer.json、tokenizer_config.json）")
        if "trust_remote_code" in str(exc):
            fix = "this tokenizer ships its own code: pass trust_remote_code=True if you trust the model's source"
            fix_zh = "这个分词器自带代码：如果信任模型的来源，请传入 trust_remote_code=True"
        raise InputError(f"{path}: transformers cannot load this tokenizer ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200]}); {fix}",
                         zh=f"{path}：transformers 无法加载这个分词器（{type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200]}）；{fix_zh}") from None


def check_sentencepiece(model: Path):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        sp.load(str(model))
    except Exception as exc:
        raise InputError(f"{model}: not a valid sentencepiece model ({str(exc).splitlines()[0][:160]}); "
                         "the file is corrupt or truncated — retrain the tokenizer in labs/02_pretrain.ipynb",
                         zh=f"{model}：不是有效的 sentencepiece 模型（{str(exc).splitlines()[0][:160]}）；"
                            "文件已损坏或不完整——请在 labs/02_pretrain.ipynb 中重新训练分词器") from None
    return sp


