"""The arithmetic of measuring a quantization level as llama.cpp's ``llama-perplexity`` does: the text cut into
windows, the first token of each replaced by BOS, the second half of each window scored, and the KL-divergence
statistics ``llama-perplexity --kl-divergence`` prints. Pure numpy: no model, no process."""
from __future__ import annotations

import numpy as np


def windows(ids: list[int], n_ctx: int, max_windows: int | None = None) -> list[list[int]]:
    w = [ids[i:i + n_ctx] for i in range(0, len(ids) - n_ctx + 1, n_ctx)]
    return w[:max_windows] if max_windows else w


def with_bos(ids: list[int], n_ctx: int, bos: int | None) -> list[int]:
    """``ids`` with the first token of every window replaced by ``bos`` (llama-perplexity does this when
    the vocabulary adds a BOS: each window then starts as a document would); unchanged without one."""
    if bos is None:
        return list(ids)
    out = list(ids)
    for i in range(0, len(out) - n_ctx + 1, n_ctx):
        out[i] = bos
    return out


def scored(n_ctx: int) -> slice:
    """The logits of a window that are scored: positions ``n_ctx/2`` … ``n_ctx − 2``, predicting the
    tokens ``n_ctx/2 + 1`` … ``n_ctx − 1`` (llama-perplexity's ``first = n_ctx/2`` and its
    ``n_ctx − 1 − first`` tokens per chunk)."""
    return slice(n_ctx // 2, n_ctx - 1)


def targets_of(ids: list[int], n_ctx: int) -> np.ndarray:
    """The tokens the scored logits predict, window after window."""
    s = scored(n_ctx)
    return np.concatenate([np.asarray(w[s.start + 1:s.stop + 1]) for w in windows(ids, n_ctx)])


def chat_rows(conv: tuple[list[int], int]) -> slice:
    """The logits rows of a conversation ``(ids, start)`` that predict its reply: ``ids[start:]``."""
    ids, start = conv
    return slice(start - 1, len(ids) - 1)


def kld_stats(ref_lp: np.ndarray, lp: np.ndarray, targets: np.ndarray) -> dict:
    """The statistics ``llama-perplexity --kl-divergence`` prints, from per-position log-probabilities
    of the reference (``ref_lp``) and the quantized model (``lp``) and the tokens that came next:
    KL(ref ‖ q) per position (mean, median, 99th and 99.9th percentile, max), the share of positions
    where both pick the same top token ("same top p"), and Δp = p_q(next) − p_ref(next) (mean and RMS,
    in percent)."""
    kl = np.maximum((np.exp(ref_lp) * (ref_lp - lp)).sum(-1), 0.0)
    rows = np.arange(len(targets))
    dp = np.exp(lp[rows, targets]) - np.exp(ref_lp[rows, targets])
    return {"kl": kl, "kl_mean": float(kl.mean()), "kl_median": float(np.median(kl)),
            "kl_p99": float(np.quantile(kl, 0.99)), "kl_p999": float(np.quantile(kl, 0.999)), "kl_max": float(kl.max()),
            "top1": float((ref_lp.argmax(-1) == lp.argmax(-1)).mean()),
            "dp_mean": float(dp.mean() * 100), "dp_rms": float(np.sqrt((dp ** 2).mean()) * 100)}
