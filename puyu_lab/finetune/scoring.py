"""Scores during and after training: held-out self-cognition answers, and over-fitting (unrelated
prompts answered with the self-introduction)."""
from __future__ import annotations

from ..contracts.dialogs import CONTROL_PROMPTS


def selfcog_score(chat, heldout: list[dict], max_new_tokens: int = 40) -> tuple[float, list[dict]]:
    """Share of held-out paraphrases answered with the assistant's name."""
    answers = chat.replies([h["prompt"] for h in heldout], max_new_tokens)
    rows = [{"prompt": h["prompt"], "answer": a, "ok": h["expect"] in a} for h, a in zip(heldout, answers)]
    return (sum(r["ok"] for r in rows) / len(rows) if rows else 0.0), rows


def collapse_rate(chat, name: str, prompts=CONTROL_PROMPTS, max_new_tokens: int = 40) -> tuple[float, dict]:
    """Share of unrelated prompts whose answer is the self-introduction (over-fitting)."""
    answers = dict(zip(prompts, chat.replies(list(prompts), max_new_tokens)))
    return sum(name in a for a in answers.values()) / len(prompts), answers
