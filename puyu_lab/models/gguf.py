"""llama.cpp through llama-cpp-python: quiet logs, loading with clear errors, exact F32 KV cache,
and :class:`GGUFModel` — generation through the shared decode loop, lm-eval's log-likelihoods.

The prompt of a chat comes from the chat template the GGUF carries (the tokenizer's
``chat_template``, copied by the converter), rendered with Jinja as llama.cpp's server renders it.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import LocalModel, continuation_logprob
from .scoring import Scorer
from .template import IM_END

_LOG_CB = None
GGML_TYPE_F32 = 0


def quiet() -> None:
    """Silence llama.cpp's log lines (loader tables, graph stats) for this process."""
    global _LOG_CB
    import llama_cpp

    if _LOG_CB is None:
        _LOG_CB = llama_cpp.llama_log_callback(lambda level, text, user: None)
        llama_cpp.llama_log_set(_LOG_CB, ctypes.c_void_p(0))


_CHECKED: dict = {}  # (path, size, mtime) of files check_gguf has read whole: a file is parsed once per process


def check_gguf(path: str | Path) -> Path:
    """A readable GGUF file, or one clear error (missing, truncated, not GGUF)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such GGUF file — run the conversion step first",
                         zh=f"{path}：GGUF 文件不存在——请先运行转换这一步")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return path
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise InputError(f"{path}: not a GGUF file (it starts with {magic!r}, not b'GGUF') — convert the model again",
                         zh=f"{path}：不是 GGUF 文件（开头是 {magic!r}，而不是 b'GGUF'）——请重新转换模型")
    try:
        from gguf import GGUFReader

        r = GGUFReader(str(path))
        size = path.stat().st_size
        end = max((int(t.data_offset) + int(t.n_bytes) for t in r.tensors), default=0)
        if end > size:
            raise ValueError(f"tensor data runs to byte {end} but the file has {size}")
    except Exception as e:  # gguf raises plain ValueError / IndexError / struct errors on damage
        raise InputError(f"{path}: the GGUF file is truncated or corrupt ({e}) — convert / quantize it again",
                         zh=f"{path}：GGUF 文件不完整或已损坏（{e}）——请重新转换 / 量化") from None
    _CHECKED[key] = True
    return path


def load(path: str | Path, *, n_ctx: int = 512, logits_all: bool = False, n_threads: int | None = None,
         type_k: int = GGML_TYPE_F32, type_v: int = GGML_TYPE_F32, **kw):
    """A ``llama_cpp.Llama`` with an F32 KV cache unless told otherwise (llama.cpp's default F16 cache
    alone moves logits by ~1e-3)."""
    import os

    from llama_cpp import Llama

    quiet()
    path = check_gguf(path)
    return Llama(str(path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=logits_all, verbose=False,
                 n_threads=n_threads or min(4, os.cpu_count() or 1), type_k=type_k, type_v=type_v, **kw)


def last_logits(llm):
    """The logits of the last evaluated position, whether or not the model keeps all of them
    (``llm.scores`` is only filled with ``logits_all=True``)."""
    import llama_cpp

    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


class GGUFModel(LocalModel, Scorer):
    """A GGUF file through llama.cpp (scoring: batch 1, one ``eval`` per request)."""

    can_score = True

    def __init__(self, path, name: str | None = None, *, n_ctx: int = 1024, max_length: int | None = None,
                 model_id: str | None = None, logits_all: bool | None = None, llm=None):
        self.path = Path(path)
        self.name = name or self.path.stem
        self.max_length = max_length or n_ctx - 1
        if logits_all is None:
            logits_all = max_length is not None  # a scorer needs every position's logits
        self.llm = llm if llm is not None else load(self.path, n_ctx=max(n_ctx, self.max_length + 1),
                                                      logits_all=logits_all)
        # llama.cpp keeps every position's logits only in a context made with logits_all (llm.scores
        # holds the last one and stale memory otherwise): scoring then uses a second context of its own
        self._all_logits = bool(getattr(self.llm, "_logits_all", False)) if llm is not None else logits_all
        self._scorer = None
        self.model_id = model_id or f"gguf:{self.path.resolve()}:{self.path.stat().st_mtime_ns}"
        self.template = self.llm.metadata.get("tokenizer.chat_template")
        self._bos = self.llm.token_bos()
        self._bos_text = self.llm.detokenize([self._bos], special=True).decode("utf-8", "ignore")
        self._jinja = None  # the chat template, compiled once
        self._scored: list[int] = []  # the ids whose logits the scoring context holds (prefix reuse)
        self._init_cache()

    @property
    def has_chat_template(self) -> bool:
        return bool(self.template)

    # ---- prompts and text ----
    def render(self, messages: list[dict]) -> str:
        """The chat template the GGUF carries, rendered for a reply to ``messages``."""
        import jinja2

        if not self.template:
            raise InputError(f"{self.path} carries no chat template (a base model?): generate from a text prompt",
                             zh=f"{self.path} 没有附带对话模板（是基座模型吗？）：请直接用文本提示生成")
        if self._jinja is None:
            self._jinja = jinja2.Environment(loader=jinja2.BaseLoader()).from_string(self.template)
        eos = self.llm.detokenize([self.llm.token_eos()], special=True).decode("utf-8")
        return self._jinja.render(messages=messages, add_generation_prompt=True, bos_token=self._bos_text, eos_token=eos)

    def prompt_ids(self, inp):
        if isinstance(inp, list):
            ids = self.llm.tokenize(self.render(inp).encode("utf-8"), add_bos=False, special=True)
        else:
            ids = self.encode(inp)
        return self.llm.detokenize(ids, special=True).decode("utf-8", errors="replace"), ids

    def stop_token_ids(self):
        stops = {self.llm.token_eos()}
        end = self.token_id(IM_END)
        if end is not None:
            stops.add(end)
        return stops

    def detokenize(self, ids, keep_special=False):
        return self.llm.detokenize(ids, special=keep_special).decode("utf-8", errors="ignore")

    def piece(self, token):
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def vocab_size(self):
        return self.llm.n_vocab()

    def token_id(self, text):
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return int(ids[0]) if len(ids) == 1 else None

    # ---- the decode loop's steps ----
    def _begin(self, ids):
        self._scored = []  # a generation overwrites the cache (when one context also scores)
        self.llm.reset()
        self.llm.eval(ids)
        return last_logits(self.llm)

    def _step(self, token):
        self.llm.eval([token])
        return last_logits(self.llm)

    # ---- lm-eval's tokenization and scoring ----
    def encode(self, s: str, add_special_tokens: bool | None = None) -> list[int]:
        add = True if add_special_tokens is None else add_special_tokens
        if add_special_tokens is None and s.startswith(self._bos_text):
            add = False
        return self.llm.tokenize(s.encode("utf-8"), add_bos=add, special=True)

    @property
    def prefix_token_id(self) -> int:
        return self._bos

    def position_logits(self, ids: list[int], start: int = 0) -> np.ndarray:
        """The logits of positions ``start`` … of ``ids``, float32 as llama.cpp computes them (only those rows are
        copied out: a scorer needs the continuation's, not a vocabulary-wide row per context token). llama.cpp keeps them
        only in a context made with ``logits_all`` — without it ``llm.scores`` holds the last position and stale
        memory for the rest — so a model loaded for generation scores in a second context that has it (made
        once, closed with the model; the generation context is left alone).

        The scoring context keeps its KV cache between calls: a request that shares a prefix with the last one
        (the choices of one multiple-choice question, which :meth:`_order` puts side by side) evaluates only
        the tokens after it — a row's logits depend on the tokens up to it alone, so the rows kept are the same
        (llama.cpp's server reuses a slot's cache prefix the same way)."""
        llm = self.llm
        if not self._all_logits:
            if self._scorer is None:
                self._scorer = load(self.path, n_ctx=self.llm.n_ctx(), logits_all=True,
                                    n_threads=getattr(self.llm, "n_threads", None))
            llm = self._scorer
        keep = 0
        if not (getattr(llm, "_is_recurrent", False) or getattr(llm, "_is_hybrid", False)):
            old = self._scored
            while keep < min(len(old), len(ids)) and old[keep] == ids[keep]:
                keep += 1
            keep = min(keep, len(ids) - 1)  # at least one token is evaluated (the cache then ends at ids)
        llm.reset()
        llm.n_tokens = keep
        llm.eval(ids[keep:])
        self._scored = list(ids)
        return np.array(llm.scores[start: len(ids)], dtype=np.float32)  # a copy: the next call overwrites scores

    @staticmethod
    def _order(req) -> tuple:
        """Requests in token order, so those that share a context (a question's choices) come one after another
        and :meth:`position_logits` evaluates the shared part once."""
        _, c, k, _ = req
        return tuple(c + k)

    def _score_batch(self, batch):
        out = []
        for c, k in batch:
            inp = (c + k)[-(self.max_length + 1):][:-1]
            out.append(continuation_logprob(self.position_logits(inp, len(inp) - len(k)), k))
        return out

    def close(self) -> None:
        self.llm.close()
        if self._scorer is not None:
            self._scorer.close()
            self._scorer = None


class GGUFTokenizer:
    """The tokenizer a GGUF file carries, as llama.cpp itself runs it (the file opened for its vocabulary only,
    no weights): the part of a transformers tokenizer the deploy stage and its panel use (``__call__``,
    ``decode``, ``convert_ids_to_tokens`` / ``convert_tokens_to_ids``, ``bos_token_id``, ``eos_token_id``,
    ``chat_template``). Written here because transformers' own GGUF tokenizer loading (``gguf_file=``) is not
    exact: on the chain's sentencepiece vocabulary it adds a leading-space token llama.cpp does not (measured),
    and a ladder must be measured on the tokens llama.cpp will really see."""

    def __init__(self, path: str | Path):
        import llama_cpp

        quiet()
        self.path = check_gguf(path)
        self.llm = llama_cpp.Llama(str(self.path), vocab_only=True, verbose=False)
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        bos = self.llm.token_bos()
        self.bos_token_id = bos if add_bos and bos >= 0 else None
        self.eos_token_id = self.llm.token_eos()
        self.chat_template = self.llm.metadata.get("tokenizer.chat_template")

    def __call__(self, text: str, add_special_tokens: bool = True, **_) -> dict:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens and self.bos_token_id is not None,
                                special=True)
        return {"input_ids": list(ids)}

    def __len__(self) -> int:
        return self.llm.n_vocab()

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.llm.detokenize([int(i) for i in ids], special=not skip_special_tokens).decode("utf-8", "replace")

    def convert_ids_to_tokens(self, ids):
        import llama_cpp

        if isinstance(ids, (list, tuple)):
            return [self.convert_ids_to_tokens(i) for i in ids]
        return llama_cpp.llama_vocab_get_text(self._vocab, int(ids)).decode("utf-8", "replace")

    def convert_tokens_to_ids(self, token: str) -> int | None:
        ids = self.llm.tokenize(token.encode("utf-8"), add_bos=False, special=True)
        return ids[0] if len(ids) == 1 else None
