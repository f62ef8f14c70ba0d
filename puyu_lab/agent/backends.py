"""Where an agent's replies come from: transformers, a llama.cpp GGUF file, or an OpenAI-compatible
endpoint (with its native tool calling).

Each backend's ``generate`` returns a :class:`Generation`: the raw reply with special tokens kept
(``<|action_start|>`` must survive), the exact prompt, token counts, and — where the backend has
the logits — the first token's top candidates and the probability of the ``watch`` token (the
trace panel's "why was no tool called?" uses it).
"""
from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Generation:
    text: str
    prompt: str  # exactly what was sent (text, or the JSON request for an endpoint)
    prompt_tokens: int
    output_tokens: int
    seconds: float
    first_token: list[tuple[str, float]] = field(default_factory=list)  # top-5 at the first position
    watch_prob: float | None = None  # probability of the watched token at the first position
    tool_calls: list[dict] | None = None  # native calls of an endpoint: [{"id", "name", "arguments"}]


def _top(probs: np.ndarray, decode, k: int = 5) -> list[tuple[str, float]]:
    idx = np.argsort(-probs)[:k]
    return [(decode(int(i)), round(float(probs[i]), 4)) for i in idx]


def _softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def _cut(text: str, stop) -> str:
    for s in stop or ():
        if s in text:
            text = text[:text.index(s)]
    return text


class Backend(ABC):
    name: str = "backend"
    native_tools = False  # True: ``tools`` go to the endpoint, calls come back as ``tool_calls``

    @abstractmethod
    def generate(self, messages: list[dict], *, max_new_tokens: int = 128, stop=(), watch: str | None = None,
                 tools: list[dict] | None = None) -> Generation:
        """One greedy reply to ``messages``."""

    def close(self) -> None:
        """Free what the backend holds (a model file, a connection)."""


class HFBackend(Backend):
    """A transformers model through :class:`~puyu_lab.chat.HFChat` (its chat template and stop ids),
    decoding with special tokens kept."""

    def __init__(self, model, tok, name: str = "transformers"):
        from ..chat import HFChat

        self.chat = HFChat(model, tok, name=name)  # installs the chat template when missing
        self.model, self.tok, self.name = model, tok, name

    @classmethod
    def load(cls, ws, name_or_path: str) -> "HFBackend":
        from ..chat import HFChat

        c = HFChat.load(ws, name_or_path)
        return cls(c.model, c.tok, name=f"transformers · {name_or_path}")

    def generate(self, messages, *, max_new_tokens=128, stop=(), watch=None, tools=None):
        import torch

        from ..finetune.template import render

        t0 = time.perf_counter()
        prompt = render(self.tok, messages, add_generation_prompt=True)
        kw = self.chat.generate_kwargs(messages, max_new_tokens, 0.0)
        kw.update(output_logits=True, return_dict_in_generate=True)
        if stop:
            kw.update(stop_strings=list(stop), tokenizer=self.tok)
        n_prompt = kw["input_ids"].shape[1]
        self.model.eval()
        with torch.no_grad():
            out = self.model.generate(**kw)
        new = out.sequences[0, n_prompt:].tolist()
        probs = _softmax(out.logits[0][0].float().cpu().numpy())
        watch_prob = None
        if watch is not None:
            wid = self.tok.convert_tokens_to_ids(watch)
            if wid is not None and wid != self.tok.unk_token_id:
                watch_prob = round(float(probs[wid]), 6)
        text = _cut(self.tok.decode(new, skip_special_tokens=False), stop)
        return Generation(text, prompt, n_prompt, len(new), time.perf_counter() - t0,
                          _top(probs, lambda i: self.tok.convert_ids_to_tokens(i)), watch_prob)


class GGUFBackend(Backend):
    """A GGUF file through llama.cpp, prompted with the chat template the GGUF carries."""

    def __init__(self, path, name: str | None = None, n_ctx: int = 1024):
        from ..chat import LlamaCppChat

        self.chat = LlamaCppChat(path, n_ctx=n_ctx)
        self.llm = self.chat.llm
        self.name = name or f"llama.cpp · {Path(path).name}"

    def _piece(self, i: int) -> str:
        return self.llm.detokenize([i], special=True).decode("utf-8", errors="replace")

    def generate(self, messages, *, max_new_tokens=128, stop=(), watch=None, tools=None):
        from ..deploy.llama import last_logits

        t0 = time.perf_counter()
        ids = self.chat.prompt_ids(messages)
        prompt = self.llm.detokenize(ids, special=True).decode("utf-8", errors="replace")
        stops = self.chat.stop_tokens()
        self.llm.reset()
        self.llm.eval(ids)
        out: list[int] = []
        first, watch_prob = [], None
        text = ""
        for step in range(max_new_tokens):
            logits = last_logits(self.llm)
            if step == 0:
                p = _softmax(logits)
                first = _top(p, self._piece)
                if watch is not None:
                    w = self.llm.tokenize(watch.encode(), add_bos=False, special=True)
                    if len(w) == 1:
                        watch_prob = round(float(p[w[0]]), 6)
            nxt = int(np.argmax(logits))
            out.append(nxt)
            if nxt in stops:
                break
            text = self.llm.detokenize(out, special=True).decode("utf-8", errors="ignore")
            if any(s in text for s in stop or ()):
                break
            self.llm.eval([nxt])
        text = self.llm.detokenize(out, special=True).decode("utf-8", errors="ignore")
        return Generation(_cut(text, stop), prompt, len(ids), len(out), time.perf_counter() - t0, first, watch_prob)

    def close(self) -> None:
        self.chat.close()


class OpenAIBackend(Backend):
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint with native tool calling: the tools go
    in the request's ``tools``, calls come back as ``tool_calls``, results go back as ``tool``
    messages. ``tool_choice`` is passed through (``"auto"``, or a tool to force)."""

    native_tools = True

    def __init__(self, base_url: str, model: str = "default", name: str | None = None, api_key: str = "none",
                 tool_choice: str | dict = "auto"):
        from ..deploy.serve import OpenAIChat

        self.client = OpenAIChat(base_url, model, api_key=api_key)
        self.name = name or f"OpenAI API · {model} @ {base_url}"
        self.tool_choice = tool_choice

    def generate(self, messages, *, max_new_tokens=128, stop=(), watch=None, tools=None):
        t0 = time.perf_counter()
        body = {"model": self.client.model, "messages": messages, "max_tokens": max_new_tokens, "temperature": 0.0}
        if tools:
            body["tools"] = [{"type": "function", "function": t} for t in tools]
            body["tool_choice"] = self.tool_choice
        if stop:
            body["stop"] = list(stop)
        import urllib.error

        from ..errors import PuyuError

        try:
            with self.client._post(body) as r:
                resp = json.loads(r.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", errors="replace")[:500]
            raise PuyuError(f"{self.client.base_url}/chat/completions answered {e.code}: {detail}") from None
        msg = resp["choices"][0]["message"]
        calls = None
        if msg.get("tool_calls"):
            calls = [{"id": c.get("id") or f"call_{i}", "name": c["function"]["name"],
                      "arguments": c["function"].get("arguments", "{}")} for i, c in enumerate(msg["tool_calls"])]
        usage = resp.get("usage") or {}
        return Generation(msg.get("content") or "", json.dumps(body, ensure_ascii=False, indent=1),
                          usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                          time.perf_counter() - t0, tool_calls=calls)
