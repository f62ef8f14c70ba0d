"""Constrained decoding: which tokens may come next, given the tokens generated so far.

The decode loop of :class:`puyu_lab.models.base.LocalModel` (the one transformers and llama.cpp
share) takes ``generate(..., constraint=c)``: it calls ``c.start(prompt_ids, max_new_tokens)`` once
(a grammar that must close — a JSON call — needs to know its token budget), then at every
step ``logits = c.process(generated_ids, logits)`` before it picks the next token (argmax or a
sample). So a grammar behaves identically on both runtimes — it never sees which one computed the
logits. The first-token candidates and ``watch_prob`` a Generation reports stay the model's own
(before the mask): they show what the model wanted, the text shows what the constraint let through.

A constraint says what is allowed by :meth:`Constraint.allowed` (token ids, a boolean mask, or None
for "anything"); :meth:`Constraint.process` turns that into logits with ``-inf`` elsewhere.

:func:`token_texts` is the vocabulary as text — what each id adds to the decoded string — built
through the backend's own ``detokenize``, so the same table comes out of a transformers tokenizer
and of the GGUF's (they hold the same ids). Character-level grammars (a JSON schema) need it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np


class Constraint(ABC):
    """Masks the next token's logits given the generated tokens (one generation at a time)."""

    def start(self, prompt_ids: Sequence[int], max_new_tokens: int | None = None) -> None:
        """A new generation after ``prompt_ids`` of at most ``max_new_tokens`` (reset any state)."""

    @abstractmethod
    def allowed(self, ids: Sequence[int]):
        """The ids allowed next after the generated ``ids``: an int array / list, a boolean mask over
        the vocabulary, or None (no restriction)."""

    def process(self, ids: Sequence[int], logits: np.ndarray) -> np.ndarray:
        """``logits`` with every disallowed token at ``-inf``."""
        return mask_logits(logits, self.allowed(ids))


def mask_logits(logits: np.ndarray, allowed) -> np.ndarray:
    """Keep the logits of ``allowed`` (ids or a boolean mask; None keeps all), ``-inf`` elsewhere."""
    if allowed is None:
        return logits
    a = np.asarray(allowed)
    out = np.full_like(logits, -np.inf)
    if a.dtype == bool:
        n = min(len(a), len(logits))
        out[:n][a[:n]] = logits[:n][a[:n]]
    else:
        a = a.astype(np.int64, copy=False)
        a = a[(a >= 0) & (a < len(logits))]
        out[a] = logits[a]
    if not np.isfinite(out).any():
        raise ValueError("the constraint allows no token of this vocabulary at this step")
    return out


def token_texts(model) -> list[str | None]:
    """For every id of ``model``'s vocabulary, the text it adds after an ordinary token, or None for
    tokens a grammar should not build text from: special / control tokens (no text without
    ``keep_special``) and byte pieces that are not a whole character on their own (byte fallback of a
    multi-byte UTF-8 character).

    The text is taken after an anchor token because sentencepiece decoders drop the leading space
    of the first token of a sequence (``▁the`` alone decodes to ``the``)."""
    n = model.vocab_size()
    anchor = _anchor(model, n)
    base = model.detokenize([anchor])
    out: list[str | None] = []
    for i in range(n):
        plain = model.detokenize([anchor, i])
        text = plain[len(base):] if plain.startswith(base) else None
        if not text or "\ufffd" in text:
            out.append(None)
        elif model.detokenize([i], keep_special=False) == "" and model.detokenize([i], keep_special=True):
            out.append(None)  # a special token renders only with keep_special
        else:
            out.append(text)
    return out


def _anchor(model, n: int) -> int:
    """An ordinary one-character token to decode after (the first printable ASCII letter found)."""
    for ch in "aeoxz0":
        i = model.token_id(ch)
        if i is not None and i < n and model.detokenize([i]) == ch:
            return i
    for i in range(n):
        t = model.detokenize([i])
        if len(t) == 1 and t.isalnum():
            return i
    raise ValueError("no ordinary one-character token to anchor the vocabulary on")
