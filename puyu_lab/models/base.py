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


def continuation_logprob(logits, targets) -> tuple[float, bool]:
    """The summed log-probability of ``targets`` under the rows of ``logits`` (one row per target), and whether
    each target is its row's argmax: log_softmax at the targets without building the whole table. Float32 logits
    (what llama.cpp computes) stay float32 through the exp — as torch's float32 log_softmax for a transformers
    model — and every sum is float64."""
    x = np.asarray(logits)
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    kk = np.asarray(targets, dtype=np.int64)
    m = x.max(-1)
    lse = m.astype(np.float64) + np.log(np.exp(x - m[:, None]).sum(-1, dtype=np.float64))
    picked = x[np.arange(len(kk)), kk].astype(np.float64)
    return float((picked - lse).sum()), bool((x.argmax(-1) == kk).all())


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
    return flag.is_set()


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

    # ---- many prompts at once ----
    can_batch = False  # True: the backend evaluates several sequences in one forward (BatchedLocalModel)

    def generate_batch(self, inputs: list, *, max_new_tokens: int = 64, stop: Sequence[str] = (),
                       watch: str | None = None, stop_flag=None, keep_special: bool = False,
                       ignore_eos: bool = False, constraints: list | None = None,
                       batch_size: int = 64) -> list[Generation]:
        """Greedy replies to several prompts: what ``generate`` gives for each of them (same arguments;
        ``constraints``: one constraint or None per prompt, each with its own state). A backend that
        evaluates a batch in one forward (transformers: ``can_batch``) decodes ``batch_size`` prompts in
        lock-step — on a small model most of a step's time is the framework's per-call overhead, not
        arithmetic, so forty sequences cost little more than one. Rows are left-padded and masked; a row's
        tokens equal its own unbatched run's (``tests/models``; its logits to float rounding). Each
        Generation's ``seconds`` is then its batch's wall time. Other backends (llama.cpp here: one sequence
        per context; an endpoint) run the prompts one by one."""
        constraints = list(constraints) if constraints is not None else [None] * len(inputs)
        if len(constraints) != len(inputs):
            raise ValueError(f"{len(constraints)} constraints for {len(inputs)} prompts: give one (or None) per prompt")
        kw = dict(max_new_tokens=max_new_tokens, stop=tuple(stop or ()), watch=watch, keep_special=keep_special,
                  ignore_eos=ignore_eos)
        if not self.can_batch or len(inputs) < 2:
            return [self.generate(x, stop_flag=stop_flag, constraint=c, **kw) for x, c in zip(inputs, constraints)]
        out: list[Generation] = []
        for b in range(0, len(inputs), batch_size):
            out += self._decode_batch(inputs[b:b + batch_size], constraints[b:b + batch_size], stop_flag, **kw)
        return out

    def replies(self, prompts: list[str], max_new_tokens: int = 64) -> list[str]:
        """``reply`` to each prompt as one user turn, decoded together where the backend batches."""
        gens = self.generate_batch([[{"role": "user", "content": p}] for p in prompts], max_new_tokens=max_new_tokens)
        return [g.text.strip() for g in gens]

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
        row = _Row(self, inp, max_new_tokens=max_new_tokens, stop=stop, temperature=temperature, watch=watch,
                   keep_special=keep_special, seed=seed, ignore_eos=ignore_eos, constraint=constraint)
        try:
            logits = self._begin(row.ids)
            prefill = time.perf_counter() - t0
            for step in range(max_new_tokens):
                if is_set(stop_flag):
                    row.finish = "stopped"
                    break
                nxt = row.pick(logits)
                if nxt is None:
                    break
                piece = row.piece()
                if piece:
                    yield piece
                if step + 1 < max_new_tokens:
                    logits = self._step(nxt)
            piece = row.piece(final=True)
            if piece:
                yield piece
            yield row.generation(time.perf_counter() - t0, prefill)
        finally:
            self._end()


class BatchedLocalModel(LocalModel):
    """A local model that evaluates several sequences in one forward (transformers): ``generate_batch`` decodes them
    in lock-step through the same :class:`_Row` logic as one prompt."""

    can_batch = True

    @abstractmethod
    def _begin_batch(self, seqs: list[list[int]]) -> np.ndarray:
        """Evaluate several prompts with a fresh cache: ``[batch, vocab]`` logits of each one's last position."""

    @abstractmethod
    def _step_batch(self, tokens: list[int]) -> np.ndarray:
        """Append one token to each row of the batch: ``[batch, vocab]`` logits."""

    def _decode_batch(self, inputs, constraints, stop_flag, *, max_new_tokens, **kw) -> list[Generation]:
        t0 = time.perf_counter()
        rows = [_Row(self, x, max_new_tokens=max_new_tokens, temperature=0.0, seed=0, constraint=c, **kw)
                for x, c in zip(inputs, constraints)]
        try:
            logits = self._begin_batch([r.ids for r in rows])
            prefill = time.perf_counter() - t0
            live = [True] * len(rows)
            for step in range(max_new_tokens):
                if is_set(stop_flag):
                    for r, on in zip(rows, live):
                        if on:
                            r.finish = "stopped"
                    break
                nxt = []
                for i, r in enumerate(rows):
                    t = r.pick(logits[i]) if live[i] else None
                    live[i] = t is not None
                    nxt.append(t)
                if not any(live) or step + 1 >= max_new_tokens:
                    break
                # a finished row is fed its last token again: its logits are never read
                logits = self._step_batch([t if t is not None else (r.out[-1] if r.out else r.ids[-1])
                                           for t, r in zip(nxt, rows)])
        finally:
            self._end()
        seconds = time.perf_counter() - t0
        return [r.generation(seconds, prefill) for r in rows]


class _Row:
    """One sequence of the decode loop: its prompt ids, the tokens picked so far, and the rules that end
    it (end tokens, stop strings, the token budget) — shared by the one-sequence loop and the batched one."""

    def __init__(self, model: LocalModel, inp, *, max_new_tokens, stop, temperature, watch, keep_special, seed,
                 ignore_eos, constraint):
        self.model = model
        if isinstance(inp, list) and inp and all(isinstance(i, int) for i in inp):
            self.ids = list(inp)
            self.prompt = model.detokenize(self.ids, True)
        else:
            self.prompt, self.ids = model.prompt_ids(inp)
        self.stops = set() if ignore_eos else model.stop_token_ids()
        self.stop, self.temperature, self.watch, self.keep_special = stop, temperature, watch, keep_special
        self.constraint = constraint
        self.rng = np.random.default_rng(seed)
        self.out: list[int] = []
        self.shown, self.first, self.watch_prob, self.finish = "", [], None, "length"
        self.text = ""
        if constraint is not None:
            constraint.start(self.ids, max_new_tokens)

    def pick(self, logits: np.ndarray) -> int | None:
        """The next token from this step's logits; None when the row ends here (``finish`` says why)."""
        model = self.model
        if not self.out and not self.first:
            p = softmax(logits)
            self.first = top_k(p, model.piece)
            wid = model.token_id(self.watch) if self.watch is not None else None
            if wid is not None:
                self.watch_prob = round(float(p[wid]), 6)
        if self.constraint is not None:  # the candidates above are the model's own; the pick obeys the mask
            logits = self.constraint.process(self.out, logits)
        if self.temperature and self.temperature > 0:
            k = min(TOP_K, logits.shape[-1])
            cand = np.argpartition(-logits, k - 1)[:k]
            q = softmax(logits[cand] / self.temperature)
            nxt = int(cand[self.rng.choice(k, p=q)])
        else:
            nxt = int(np.argmax(logits))
        if nxt in self.stops:
            if self.keep_special:
                self.out.append(nxt)
            self.finish = "eos"
            return None
        self.out.append(nxt)
        self.text = model.detokenize(self.out, self.keep_special)
        if len(cut_at_stops(self.text, self.stop)) < len(self.text):
            self.finish = "stop"
            return None
        return nxt

    def piece(self, final: bool = False) -> str:
        """The text not yet shown that is safe to show: an unfinished UTF-8 character (byte fallback) or a
        possible stop string waits; ``final`` shows the rest (stop strings cut)."""
        if final:
            safe = cut_at_stops(self.model.detokenize(self.out, self.keep_special), self.stop)
        else:
            safe = self.text.rstrip("\ufffd")
            safe = safe[: len(safe) - _held_back(safe, self.stop)] if self.stop else safe
        if len(safe) > len(self.shown) and safe.startswith(self.shown):
            new, self.shown = safe[len(self.shown):], safe
            return new
        return ""

    def generation(self, seconds: float, prefill: float) -> Generation:
        text = cut_at_stops(self.model.detokenize(self.out, self.keep_special), self.stop)
        return Generation(text, self.prompt, len(self.ids), len(self.out), seconds, self.first, self.watch_prob,
                          finish=self.finish, tokens=list(self.out), prefill_seconds=prefill)
