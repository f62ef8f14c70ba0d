"""Scorers: one interface over transformers, llama.cpp GGUF and OpenAI-compatible endpoints.

``loglikelihood`` and ``loglikelihood_rolling`` follow lm-evaluation-harness's ``HFLM`` exactly —
its tokenization (the pair is encoded whole, then split; trailing spaces of the context move to the
continuation; the tokenizer's default special tokens), its truncation to ``max_length + 1`` tokens,
its rolling windows — so the numbers are lm-eval's (a test runs lm-eval itself). Requests are
sorted by length, longest first, and batched with right padding; results return in request order.
"""
from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np


def _rolling_windows(token_list: list[int], prefix_token: int, max_seq_len: int, context_len: int = 1):
    """lm-eval's ``get_rolling_token_windows`` + ``make_disjoint_window``."""
    if not token_list:
        return
    pred_len = max_seq_len - context_len + 1
    predicted = 0
    first_seq_len = min(max_seq_len, len(token_list))
    yield [prefix_token] + token_list[: first_seq_len - 1], token_list[:first_seq_len]
    predicted += first_seq_len
    while predicted < len(token_list):
        window_pred_len = min(len(token_list) - predicted, pred_len)
        window_end = predicted + window_pred_len
        yield token_list[window_end - max_seq_len - 1: window_end - 1], token_list[window_end - window_pred_len: window_end]
        predicted += window_pred_len


def _disjoint(pair):
    a, b = pair
    return a[: len(a) - (len(b) - 1)], b


class Backend(ABC):
    """What every model backend has: a name, an identity for the request cache, and generation."""

    name = "model"
    max_length = 2048
    model_id = ""

    def __init__(self):
        self.cache: dict | None = None
        self.cache_path: Path | None = None
        self.stats = {"requests": 0, "cached": 0}

    def use_cache(self, path: str | Path) -> None:
        self.cache_path = Path(path)
        self.cache = json.loads(self.cache_path.read_text()) if self.cache_path.is_file() else {}

    def save_cache(self) -> None:
        if self.cache_path is not None and self.cache is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_suffix(".partial")
            tmp.write_text(json.dumps(self.cache))
            os.replace(tmp, self.cache_path)

    def _key(self, kind: str, payload) -> str:
        return hashlib.sha1(json.dumps([self.model_id, self.max_length, kind, payload], ensure_ascii=False)
                            .encode()).hexdigest()

    @abstractmethod
    def generate(self, prompt: str | list[dict], stop: tuple[str, ...], max_new_tokens: int, chat: bool) -> str:
        """Greedy text for ``prompt`` (a string or chat messages), cut at the first stop sequence."""


class Scorer(Backend):
    """A backend that also gives log-likelihoods (perplexity and choice tasks): subclasses provide
    the tokenizer (``encode``, ``prefix_token_id``) and ``_score_batch``."""

    batch_size = 1

    # ---- tokenization, as lm-eval's HFLM ----
    @abstractmethod
    def encode(self, s: str, add_special_tokens: bool | None = None) -> list[int]:
        """Token ids; ``None`` means the tokenizer's default special tokens."""

    @property
    @abstractmethod
    def prefix_token_id(self) -> int:
        """The token an empty context conditions on (BOS, else EOS)."""

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        n = len(context) - len(context.rstrip())
        if n:
            continuation, context = context[-n:] + continuation, context[:-n]
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return ctx, whole[len(ctx):]

    # ---- requests ----
    def loglikelihood_tokens(self, reqs: list[tuple[list[int], list[int]]],
                             progress: Callable[[int], None] | None = None) -> list[tuple[float, bool]]:
        out: list = [None] * len(reqs)
        todo = []
        for i, (c, k) in enumerate(reqs):
            if not k or len(k) > self.max_length:
                raise ValueError(f"a continuation of {len(k)} tokens cannot be scored with max_length "
                                 f"{self.max_length} (lm-eval refuses it too): shorten the choice")
            key = self._key("ll", [c, k]) if self.cache is not None else None
            if key is not None and key in self.cache:
                out[i] = tuple(self.cache[key])
                self.stats["cached"] += 1
            else:
                todo.append((i, c, k, key))
        # longest first, as lm-eval orders them (its Collator sorts by -len(tokens))
        todo.sort(key=lambda r: (-len(r[1] + r[2]), tuple(r[1] + r[2])))
        for b in range(0, len(todo), self.batch_size):
            batch = todo[b:b + self.batch_size]
            res = self._score_batch([(c, k) for _, c, k, _ in batch])
            for (i, _, _, key), r in zip(batch, res):
                out[i] = r
                if key is not None:
                    self.cache[key] = list(r)
            self.stats["requests"] += len(batch)
            if progress:
                progress(len(batch))
        return out

    def loglikelihood(self, requests: list[tuple[str, str]], progress=None) -> list[tuple[float, bool]]:
        reqs = []
        for context, continuation in requests:
            if context == "":
                cont = self.encode(continuation, add_special_tokens=False)
                reqs.append(([self.prefix_token_id], cont) if self.prefix_token_id != cont[0] else (cont[:1], cont[1:]))
            else:
                reqs.append(self.encode_pair(context, continuation))
        return self.loglikelihood_tokens(reqs, progress)

    def loglikelihood_rolling(self, texts: list[str], progress=None) -> list[float]:
        windows, owner = [], []
        for i, text in enumerate(texts):
            for w in map(_disjoint, _rolling_windows(self.encode(text), self.prefix_token_id, self.max_length, 1)):
                windows.append(w)
                owner.append(i)
        res = self.loglikelihood_tokens(windows, progress)
        totals = [0.0] * len(texts)
        for i, (ll, _) in zip(owner, res):
            totals[i] += ll
        return totals

    @abstractmethod
    def _score_batch(self, batch: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(sum of continuation log-probs, whether greedy decoding gives the continuation) per request."""


def cut_at_stops(text: str, stop) -> str:
    idx = [text.find(s) for s in stop if s and s in text]
    return text[: min(idx)] if idx else text


class HFScorer(Scorer):
    def __init__(self, model, tok, name: str = "model", *, model_id: str = "", max_length: int | None = None,
                 batch_size: int = 1):
        super().__init__()
        self.model, self.tok, self.name = model.eval(), tok, name
        self.model_id = model_id or name
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", 2048)
        self.batch_size = batch_size

    @classmethod
    def load(cls, path, name: str | None = None, **kw) -> "HFScorer":
        import torch
        from transformers import AutoModelForCausalLM

        from ..pretrain.tokenizer import load_tokenizer

        path = Path(path)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        ident = kw.pop("model_id", None) or f"hf:{path.resolve()}:{(path / 'config.json').stat().st_mtime_ns}"
        return cls(model, load_tokenizer(path), name or path.name, model_id=ident, **kw)

    def encode(self, s: str, add_special_tokens: bool | None = None) -> list[int]:
        kw = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        bos = self.tok.bos_token
        if add_special_tokens is None and bos and s.startswith(bos):
            kw = {"add_special_tokens": False}
        return self.tok.encode(s, **kw)

    @property
    def prefix_token_id(self) -> int:
        return self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id

    def _score_batch(self, batch):
        import torch
        import torch.nn.functional as F

        inps, meta = [], []
        for c, k in batch:
            inp = (c + k)[-(self.max_length + 1):][:-1]
            inps.append(inp)
            meta.append((len(inp), k))
        n = max(len(x) for x in inps)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        t = torch.tensor([x + [pad] * (n - len(x)) for x in inps])
        with torch.no_grad():
            logp = F.log_softmax(self.model(t).logits.float(), dim=-1)
        out = []
        for row, (inplen, k) in zip(logp, meta):
            sel = row[inplen - len(k): inplen]
            kt = torch.tensor(k)
            greedy = bool((sel.argmax(-1) == kt).all())
            out.append((float(sel.gather(1, kt.unsqueeze(-1)).sum()), greedy))
        return out

    def generate(self, prompt, stop, max_new_tokens, chat):
        from ..chat import HFChat

        c = HFChat(self.model, self.tok, self.name)
        if chat and self.tok.chat_template:
            msgs = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            return cut_at_stops(c.reply(msgs, max_new_tokens), stop)
        import torch

        text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        ids = torch.tensor([self.encode(text)])
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                      do_sample=False, pad_token_id=self.tok.eos_token_id)
        return cut_at_stops(self.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True), stop).strip()


class GGUFScorer(Scorer):
    """A GGUF level through llama.cpp (batch 1: one ``eval`` per request)."""

    def __init__(self, path, name: str | None = None, max_length: int = 2048, model_id: str | None = None):
        super().__init__()
        from ..deploy.llama import load

        self.path = Path(path)
        self.name = name or self.path.stem
        self.max_length = max_length
        self.llm = load(self.path, n_ctx=max_length + 1, logits_all=True)
        self.model_id = model_id or f"gguf:{self.path.resolve()}:{self.path.stat().st_mtime_ns}"
        self._bos = self.llm.token_bos()
        self._bos_text = self.llm.detokenize([self._bos], special=True).decode("utf-8", "ignore")

    def encode(self, s: str, add_special_tokens: bool | None = None) -> list[int]:
        add = True if add_special_tokens is None else add_special_tokens
        if add_special_tokens is None and s.startswith(self._bos_text):
            add = False
        return self.llm.tokenize(s.encode("utf-8"), add_bos=add, special=True)

    @property
    def prefix_token_id(self) -> int:
        return self._bos

    def _score_batch(self, batch):
        out = []
        for c, k in batch:
            inp = (c + k)[-(self.max_length + 1):][:-1]
            self.llm.reset()
            self.llm.eval(inp)
            logits = np.array(self.llm.scores[len(inp) - len(k): len(inp)], dtype=np.float64)
            m = logits.max(-1, keepdims=True)
            lp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
            kk = np.asarray(k)
            out.append((float(lp[np.arange(len(k)), kk].sum()), bool((lp.argmax(-1) == kk).all())))
        return out

    def generate(self, prompt, stop, max_new_tokens, chat):
        from ..chat import LlamaCppChat

        c = LlamaCppChat.__new__(LlamaCppChat)
        c.path, c.name, c.llm = self.path, self.name, self.llm
        c.template = self.llm.metadata.get("tokenizer.chat_template")
        if chat and c.template:
            msgs = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            return cut_at_stops(c.reply(msgs, max_new_tokens), stop)
        text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        return cut_at_stops(c.complete(text, max_new_tokens), stop).strip()


class OpenAIScorer(Backend):
    """An OpenAI-compatible endpoint: a generation backend (the API gives no log-likelihoods, so the
    runner gives it generation tasks only)."""

    def __init__(self, base_url: str, model: str = "default", name: str | None = None):
        super().__init__()
        from ..deploy.serve import OpenAIChat

        self.client = OpenAIChat(base_url, model, name)
        self.name = name or model
        self.model_id = f"openai:{base_url}:{model}"

    def generate(self, prompt, stop, max_new_tokens, chat):
        msgs = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        return cut_at_stops(self.client.reply(msgs, max_new_tokens), stop)
