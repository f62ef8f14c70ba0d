"""The copying probe: does a model predict a span of tokens it has just seen?

A tool call has to carry the question's numbers (``"expression": "37*41"``) and the answer the
tool's result: both are *copies from the context*. Transformers learn to copy with "induction
heads" (an attention head that finds the earlier occurrence of the current token and predicts what
followed it), and they learn them during pretraining, usually after far more tokens than a CPU
budget allows. This measures it the way the interpretability literature does: random token
sequences, each shown twice; a model that can copy predicts the second showing far better than the
first (which is unpredictable by construction).

    copy_probe(model) → {"first_nll": 8.3, "second_nll": 8.3, "gain": 0.0, "copied": 0.0, ...}

``gain`` is the drop in nats per token from the first showing to the second (0 = no copying at all;
a model that copies perfectly gets close to ``first_nll``), ``copied`` the share of sequences whose
second showing is reproduced exactly by greedy decoding (from its second token: nothing in the
context says that a run starts again, so its first token is a guess). It runs through the model layer's
``loglikelihood_tokens`` (lm-eval's scoring), so transformers and GGUF models give the same figure.
No library offers this probe as a function; it is a few lines over the scorer.
"""
from __future__ import annotations

import math

import numpy as np


def induction_threshold(batch_x_context: int) -> float:
    """Training tokens after which induction heads form: N ≈ 10^5.7·√(B·C) (Aoyama, Wilcox & Schneider 2025)."""
    return 10 ** 5.7 * math.sqrt(batch_x_context)


def probe_margin(vocab: int) -> int:
    """The ids at either end of the vocabulary the probes keep clear of (special, control and byte tokens)."""
    return min(300, vocab // 10)


def copy_probe(model, *, n: int = 16, length: int = 32, seed: int = 0, pieces: int | None = None) -> dict:
    """Mean negative log-likelihood per token of ``n`` random sequences of ``length`` tokens at their
    first and second showing (after the model's prefix token; each from its second token on), the gain, and the
    share whose second showing greedy decoding reproduces. ``pieces``:
    draw the tokens from the first ``pieces`` ids after the margin only (a sub-vocabulary, as the course
    build's first copy phases train on)."""
    vocab = model.vocab_size()
    margin = probe_margin(vocab)
    high = min(vocab - margin, margin + pieces) if pieces else vocab - margin
    rng = np.random.default_rng(seed)
    prefix = [model.prefix_token_id]
    seqs = [rng.integers(margin, high, size=length).tolist() for _ in range(n)]
    # each showing is scored from its second token on: that a run starts again cannot be read from the context
    # (the first build's model, copying every later token, guessed the repeat's first token as end-of-text and so
    # "copied" nothing), while every later token is a copy of what followed the same token before — induction
    reqs = [(prefix + s[:1], s[1:]) for s in seqs] + [(prefix + s + s[:1], s[1:]) for s in seqs]
    res = model.loglikelihood_tokens(reqs)
    first = -float(np.mean([lp for lp, _ in res[:n]])) / (length - 1)
    second = -float(np.mean([lp for lp, _ in res[n:]])) / (length - 1)
    return {"first_nll": round(first, 3), "second_nll": round(second, 3), "gain": round(first - second, 3),
            "copied": sum(g for _, g in res[n:]) / n, "sequences": n, "length": length,
            "uniform_nll": round(float(np.log(vocab)), 3)}


def induction_scores(model, *, n: int = 8, length: int = 32, seed: int = 0) -> dict:
    """Each attention head's prefix-matching score: on random runs shown twice, the mean attention a
    token of the second showing pays to the token *after* its earlier occurrence — what an induction
    head does (Olsson et al., 2022, "In-context Learning and Induction Heads"). 1.0 = all of it, a
    head that attends uniformly scores about 1/position.

    ``model`` is a model-layer :class:`~puyu_lab.models.hf.HFModel` (attention weights need the
    transformers model itself; a GGUF runtime does not expose them). Returns ``scores`` (layers ×
    heads), the best head and its attention pattern over one run (for a heatmap).
    """
    import torch

    hf, vocab = model.model, model.vocab_size()
    margin = probe_margin(vocab)
    rng = np.random.default_rng(seed)
    seqs = rng.integers(margin, vocab - margin, size=(n, length))
    ids = torch.tensor(np.concatenate([np.full((n, 1), model.prefix_token_id), seqs, seqs], axis=1))
    impl = getattr(hf.config, "_attn_implementation", None)
    was_training = hf.training
    hf.eval()
    try:
        hf.config._attn_implementation = "eager"  # sdpa does not return attention weights
        with torch.no_grad():
            att = hf(input_ids=ids, output_attentions=True).attentions  # layers × (n, heads, T, T)
    finally:
        hf.config._attn_implementation = impl
        hf.train(was_training)
    # the second showing's token at position p (p = 1 + length + i) repeats position p - length; its
    # induction target is the token after that earlier occurrence, at p - length + 1
    q = np.arange(1 + length, 1 + 2 * length - 1)
    scores = np.stack([a[:, :, q, q - length + 1].float().mean(dim=(0, 2)).numpy() for a in att]).astype(float)
    layer, head = np.unravel_index(int(scores.argmax()), scores.shape)
    return {"scores": scores.round(3).tolist(), "best": {"layer": int(layer), "head": int(head),
                                                          "score": round(float(scores[layer, head]), 3)},
            "pattern": att[layer][0, head].float().numpy().astype(float).round(3).tolist(), "length": length}
