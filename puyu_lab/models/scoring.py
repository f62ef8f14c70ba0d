"""Log-likelihoods as lm-evaluation-harness computes them, for every backend that has logits.

``loglikelihood`` and ``loglikelihood_rolling`` follow lm-eval's ``HFLM`` exactly — its tokenization
(the pair is encoded whole, then split; trailing spaces of the context move to the continuation;
the tokenizer's default special tokens), its truncation to ``max_length + 1`` tokens, its rolling
windows — so the numbers are lm-eval's (a test runs lm-eval itself). Requests are sorted by length,
longest first, and batched; results return in request order. lm-eval's own ``HFLM`` is not used
directly because it cannot score a llama.cpp model, and the GGUF ladder must be scored the same way.
A backend provides ``encode``, ``prefix_token_id`` and ``_score_batch``.
"""
from __future__ import annotations

import hashlib
import json
import os
from abc import abstractmethod
from pathlib import Path
from typing import Callable


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


class RequestCache:
    """An identity for the request cache (``model_id``), the cache itself and its counters."""

    max_length = 2048
    model_id = ""

    def _init_cache(self) -> None:
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


class Scorer(RequestCache):
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
                from ..errors import InputError

                raise InputError(f"a continuation of {len(k)} tokens cannot be scored with max_length "
                                 f"{self.max_length} (lm-eval refuses it too): shorten the choice",
                                 zh=f"{len(k)} 个词元的续写无法在 max_length {self.max_length} 内打分"
                                    "（lm-eval 同样会拒绝）：请缩短这个选项")
            key = self._key("ll", [c, k]) if self.cache is not None else None
            if key is not None and key in self.cache:
                out[i] = tuple(self.cache[key])
                self.stats["cached"] += 1
            else:
                todo.append((i, c, k, key))
        todo.sort(key=self._order)
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

    @staticmethod
    def _order(req) -> tuple:
        """The order requests are scored in: longest first, as lm-eval orders them (its Collator sorts by
        -len(tokens)) so a batch pads little."""
        _, c, k, _ = req
        return (-len(c + k), tuple(c + k))

    @abstractmethod
    def _score_batch(self, batch: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(sum of continuation log-probs, whether greedy decoding gives the continuation) per request."""
