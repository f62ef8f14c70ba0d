"""The one interface every model backend has, and the one decode loop the local ones share.

``Model.generate(messages | prompt, *, max_new_tokens, stop, temperature, stream, watch,
stop_flag, constraint)`` returns a :class:`Generation` (or, with ``stream=True``, a :class:`Stream` of text
pieces that holds the Generation once it is exhausted). Messages go through the model's chat
template; a plain string is continued as text (base models). Stop strings are cut here, once; a
``stop_flag`` (``puyu_lab.events.StopFlag`` or ``threading.Event``) ends the generation itself at
the next token step, whoever is consuming it.

Transformers and llama.cpp both run the loop of :class:`LocalModel`: a backend only says how to
evaluate the prompt, how to advance by one token and how to turn ids into text. The loop is written
by hand (not ``model.generate``) so that both runtimes decode identically, report the first token's
candidates, and stop between any two tokens. A ``constraint``
(:class:`puyu_lab.models.constraints.Constraint`) masks each step's logits given the tokens so far
(constrained decoding: a grammar, a JSON schema); the loop applies it the same way for both runtimes.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

TOP_K = 40  # sampling (temperature > 0) draws from the 40 most likely tokens


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
    finish: str = "length"  # "eos" (an end token), "stop" (a stop string), "length", "stopped" (stop_flag)
    tokens: list[int] = field(default_factory=list)  # generated ids (local backends)
    prefill_seconds: float = 0.0  # evaluating the prompt (local backends)


class Stream:
    """Text pieces as they are generated; ``generation`` is set once the stream is exhausted.

    Closing the stream early (``close()``, or dropping it) ends the generation too."""

    def __init__(self, pieces: Iterator):
        self._it = pieces
        self.generation: Generation | None = None

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> str:
        item = next(self._it)
        while isinstance(item, Generation):
            self.generation = item
            item = next(self._it)
        return item

    def close(self) -> None:
        self._it.close()

    def finish(self) -> Generation:
        """Run to the end and return the Generation."""
        for _ in self:
            pass
        assert self.generation is not None
        return self.generation


def softmax(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def log_softmax(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def top_k(probs: np.ndarray, decode, k: int = 5) -> list[tuple[str, float]]:
    idx = np.argsort(-probs)[:k]
    return [(decode(int(i)), round(float(probs[i]), 4)) for i in idx]


def cut_at_stops(text: str, stop: Sequence[str] | None) -> str:
    """``text`` up to the earliest stop string."""
    idx = [text.find(s) for s in stop or () if s and s in text]
    return text[: min(idx)] if idx else text


def _held_back(text: str, stop: Sequence[str]) -> int:
    """How many trailing characters could still become a stop string (so a stream holds them back)."""
    n = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), n, -1):
            if text.endswith(s[:k]):
                n = k
                break
    return n


def is_set(flag) -> bool:
    if flag is None:
        return False
    v = flag.is_set
    return bool(v() if callable(v) else v)


def as_messages(inp) -> list[dict]:
    return inp if isinstance(inp, list) else [{"role": "user", "content": inp}]


def as_text(inp) -> str:
    return inp if isinstance(inp, str) else "\n".join(m["content"] for m in inp)


class Model(ABC):
    """A model that generates (every backend) and, where ``can_score``, gives log-likelihoods."""

    name: str = "model"
    native_tools = False  # True: ``tools`` go to the endpoint, calls come back as ``tool_calls``
    can_score = False
    can_constrain = False  # True: ``generate(constraint=…)`` masks the logits (local backends)

    def generate(self, inp: list[dict] | str, *, max_new_tokens: int = 64, stop: Sequence[str] = (),
                 temperature: float = 0.0, stream: bool = False, watch: str | None = None, stop_flag=None,
                 tools: list[dict] | None = None, keep_special: bool = False, seed: int = 0,
                 ignore_eos: bool = False, constraint=None):
        """A reply to chat ``messages`` (list of dicts) or a continuation of a text ``prompt`` (str;
        local backends also take token ids).

        ``keep_special`` keeps special tokens in the text (an agent's ``<|action_start|>``) and the
        end token that stopped it. Greedy when ``temperature`` is 0. ``ignore_eos`` generates all
        ``max_new_tokens`` (speed measurements). ``constraint`` (local backends) restricts which tokens
        may come next at every step (:mod:`puyu_lab.models.constraints`); None decodes freely."""
        kw = {}
        if constraint is not None:
            if not self.can_constrain:
                raise ValueError(f"{type(self).__name__} cannot decode with a constraint: it needs the logits "
                                 "of every step (a local model: transformers or llama.cpp)")
            kw["constraint"] = constraint
        s = Stream(self._pieces(inp, max_new_tokens=max_new_tokens, stop=tuple(stop or ()), temperature=temperature,
                                watch=watch, stop_flag=stop_flag, tools=tools, keep_special=keep_special, seed=seed,
                                ignore_eos=ignore_eos, **kw))
        return s if stream else s.finish()

    @abstractmethod
    def _pieces(self, inp, *, max_new_tokens, stop, temperature, watch, stop_flag, tools, keep_special, seed,
                ignore_eos):
        """Yield text pieces, then the Generation."""

    # the chat panel's two calls
    def reply(self, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0, stop_flag=None) -> str:
        return self.generate(messages, max_new_tokens=max_new_tokens, temperature=temperature,
                             stop_flag=stop_flag).text.strip()

    def stream(self, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0,
               stop_flag=None) -> Stream:
        return self.generate(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop_flag=stop_flag,
                             stream=True)

    @property
    def has_chat_template(self) -> bool:
        return True

    def close(self) -> None:
        """Free what the backend holds (a model file, a connection)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalModel(Model):
    """A model whose logits this process computes (transformers, llama.cpp): one decode loop."""

    can_constrain = True

    # ---- what a backend provides ----
    @abstractmethod
    def prompt_ids(self, inp) -> tuple[str, list[int]]:
        """The prompt text and its ids (messages through the chat template; text with BOS)."""

    @abstractmethod
    def stop_token_ids(self) -> set[int]:
        """End of sequence and ``<|im_end|>``."""

    @abstractmethod
    def _begin(self, ids: list[int]) -> np.ndarray:
        """Evaluate the prompt (a fresh cache); the last position's logits."""

    @abstractmethod
    def _step(self, token: int) -> np.ndarray:
        """Append one token to the cache; the new last position's logits."""

    @abstractmethod
    def detokenize(self, ids: list[int], keep_special: bool = False) -> str:
        ...

    @abstractmethod
    def piece(self, token: int) -> str:
        """One token as its vocabulary entry (for the first-token candidates)."""

    @abstractmethod
    def token_id(self, text: str) -> int | None:
        """The id of ``text`` when it is exactly one token, else None."""

    @abstractmethod
    def vocab_size(self) -> int:
        """How many token ids the tokenizer has (constraints build their token table from them)."""

    def _end(self) -> None:
        """After a generation (free the cache)."""

    # ---- the loop ----
    def _pieces(self, inp, *, max_new_tokens, stop, temperature, watch, stop_flag, tools, keep_special, seed,
                ignore_eos, constraint=None):
        t0 = time.perf_counter()
        if isinstance(inp, list) and inp and all(isinstance(i, int) for i in inp):
            ids = list(inp)
            prompt = self.detokenize(ids, True)
        else:
            prompt, ids = self.prompt_ids(inp)
        stops = set() if ignore_eos else self.stop_token_ids()
        rng = np.random.default_rng(seed)
        out: list[int] = []
        shown, first, watch_prob, finish = "", [], None, "length"
        if constraint is not None:
            constraint.start(ids, max_new_tokens)
        try:
            logits = self._begin(ids)
            prefill = time.perf_counter() - t0
            for step in range(max_new_tokens):
                if is_set(stop_flag):
                    finish = "stopped"
                    break
                if step == 0:
                    p = softmax(logits)
                    first = top_k(p, self.piece)
                    wid = self.token_id(watch) if watch is not None else None
                    if wid is not None:
                        watch_prob = round(float(p[wid]), 6)
                if constraint is not None:  # the candidates above are the model's own; the pick obeys the mask
                    logits = constraint.process(out, logits)
                if temperature and temperature > 0:
                    k = min(TOP_K, logits.shape[-1])
                    cand = np.argpartition(-logits, k - 1)[:k]
                    q = softmax(logits[cand] / temperature)
                    nxt = int(cand[rng.choice(k, p=q)])
                else:
                    nxt = int(np.argmax(logits))
                if nxt in stops:
                    if keep_special:
                        out.append(nxt)
                    finish = "eos"
                    break
                out.append(nxt)
                text = self.detokenize(out, keep_special)
                cut = cut_at_stops(text, stop)
                if len(cut) < len(text):
                    finish = "stop"
                    break
                # an unfinished UTF-8 character (byte fallback) or a possible stop string waits
                safe = text.rstrip("\ufffd")
                safe = safe[: len(safe) - _held_back(safe, stop)] if stop else safe
                if len(safe) > len(shown) and safe.startswith(shown):
                    yield safe[len(shown):]
                    shown = safe
                if step + 1 < max_new_tokens:
                    logits = self._step(nxt)
            text = cut_at_stops(self.detokenize(out, keep_special), stop)
            if len(text) > len(shown) and text.startswith(shown):
                yield text[len(shown):]
            yield Generation(text, prompt, len(ids), len(out), time.perf_counter() - t0, first, watch_prob,
                             finish=finish, tokens=list(out), prefill_seconds=prefill)
        finally:
            self._end()
