"""The built-in tasks, from the chain's own held-out data (offline).

* ``news_ppl`` — perplexity on held-out news articles of ``corpus/clean``;
* ``sentiment`` — held-out labelled reviews of ``corpus/clean`` as a choice (正面 / 负面), asked
  through the chat template when the model has one (like lm-eval's ``--apply_chat_template``);
* ``selfcog`` — the held-out self-cognition paraphrases of ``sft/data``: the answer contains the name;
* ``dialog`` — chatterbot dialogs the fine-tune never trained on: pick the real reply among four
  (three distractors from other dialogs);
* ``arithmetic`` — held-out arithmetic tasks of ``sft/data``, answered directly (no tool);
* ``tool_use`` — held-out questions with the tools offered: the right tool called, or none when none is needed;
* ``pref_<source>`` — the preference lab's held-out pairs (when ``pref/data`` exists): chosen vs rejected.
"""
from __future__ import annotations

import itertools
import json
import random

from ..artifacts import PREF_DATA, load_corpus, load_pref_pairs, load_sft_data
from ..contracts.dialogs import chatterbot_dialogs
from ..contracts.tasks import ARITHMETIC_QUESTION, DATE_QUESTION, SENTIMENT_ANSWER, SENTIMENT_MAX_CHARS, SENTIMENT_PROMPT
from ..contracts.protocol import tool_prompt
from ..models.template import ACTION_END, IM_END
from .tasks import Task


def builtin_tasks(ws, n: int = 40, ppl_docs: int = 12, seed: int = 0, sentiment_n: int | None = None) -> list[Task]:
    """The tasks, ``n`` documents each; ``sentiment_n`` reviews for sentiment (None: every balanced pair held out)."""
    ws = ws.for_stage("eval")  # reads only what stages.py declares for the stage
    rng = random.Random(seed)
    held = load_corpus(ws, "heldout").to_list()
    news = [{"text": r["text"]} for r in held if r["source"] == "news-zh"][:ppl_docs]
    labels = list(SENTIMENT_ANSWER)
    by_label = {x: [r for r in held if r.get("label") == x] for x in labels}
    k = min(sentiment_n // 2 if sentiment_n else len(held), *(len(v) for v in by_label.values()))
    reviews = [r for pair in zip(*(v[:k] for v in by_label.values())) for r in pair]  # balanced: chance is 50 %
    sentiment = [{"context": SENTIMENT_PROMPT.format(text=r["text"].strip()[:SENTIMENT_MAX_CHARS]),
                  "choices": [SENTIMENT_ANSWER[x] for x in labels], "gold": labels.index(r["label"])} for r in reviews]
    tasks = [Task("news_ppl", "perplexity", news, description="held-out news, lm-eval rolling perplexity"),
             Task("sentiment", "choice", sentiment, delimiter="", meta={"chat": True},
                  description="held-out reviews: 正面 / 负面 by log-likelihood")]
    if ws.exists("sft/data"):
        trained = {json.dumps(c["messages"], ensure_ascii=False) for c in load_sft_data(ws, "train")
                   if c["kind"] == "dialog"}
        pool = [d for d in chatterbot_dialogs() if json.dumps(d["messages"], ensure_ascii=False) not in trained]
        rng.shuffle(pool)
        replies = [d["messages"][1]["content"] for d in pool]
        dialog = []
        for d in pool[:n]:
            true = d["messages"][1]["content"]
            opts = rng.sample([r for r in replies if r != true], 3) + [true]
            rng.shuffle(opts)
            dialog.append({"context": d["messages"][0]["content"], "choices": opts, "gold": opts.index(true)})
        selfcog = [{"prompt": h["prompt"], "answer": h["expect"]} for h in load_sft_data(ws, "selfcog_heldout")]
        arith = [{"prompt": ARITHMETIC_QUESTION.format(e=t["expression"]), "answer": str(t["result"])}
                 for t in load_sft_data(ws, "arithmetic_heldout")[:n]]
        tasks += [Task("selfcog", "generation", selfcog, match="contains", max_new_tokens=24,
                       description="held-out paraphrases: the answer contains the assistant's name"),
                  Task("dialog", "choice", dialog, delimiter="", meta={"chat": True},
                       description="unseen chatterbot dialogs: the real reply among four"),
                  Task("arithmetic", "generation", arith, match="regex", regex=r"(-?\d+)", max_new_tokens=16,
                       description="held-out arithmetic, answered directly (no calculator)")]
        tasks.append(tool_use_task(ws, n))
    if ws.exists(PREF_DATA):
        tasks += preference_tasks(load_pref_pairs(ws, "heldout"))
    return tasks


def tool_use_task(ws, n: int) -> Task:
    """Held-out questions asked with the tools offered: arithmetic (→ calculator), dates (→ add_days)
    and questions that need none (→ answered directly). Score: the reply calls the right tool, or none."""
    docs = [{"messages": tool_prompt(ARITHMETIC_QUESTION.format(e=t["expression"])), "answer": "calculator"}
            for t in load_sft_data(ws, "arithmetic_heldout")[: n // 2]]
    docs += [{"messages": tool_prompt(DATE_QUESTION.format(date=t["date"], days=t["days"])), "answer": "add_days"}
             for t in load_sft_data(ws, "date_heldout")[: n // 4]]
    # no tool needed: self-cognition paraphrases and chit-chat, alternating (both kinds are in any n)
    kinds = [[h for h in load_sft_data(ws, "notool_heldout") if h.get("kind") == k] for k in ("self", "dialog")]
    mixed = [h for pair in itertools.zip_longest(*kinds) for h in pair if h is not None]
    docs += [{"messages": tool_prompt(h["prompt"]), "answer": "none"} for h in mixed[: n // 4]]
    return Task("tool_use", "generation", docs, match="tool", keep_special=True, stop=(ACTION_END,),
                max_new_tokens=40, description="held-out questions with tools offered: the right tool is called, "
                "or none when none is needed")


def preference_tasks(pairs: list[dict]) -> list[Task]:
    """One choice task per source of ``pref/data``'s held-out pairs: the prompt in the model's chat
    format, chosen vs rejected (each closed by ``<|im_end|>``); acc = the share where chosen has the
    higher log-likelihood — the preference lab's held-out preference accuracy."""
    by: dict[str, list[dict]] = {}
    for p in pairs:
        last_user = next((m["content"] for m in reversed(p["prompt"]) if m["role"] == "user"), p["prompt"][-1]["content"])
        by.setdefault(p["source"], []).append({
            "context": last_user, "messages": p["prompt"], "gold": 0,
            "choices": [p["chosen"][0]["content"] + IM_END, p["rejected"][0]["content"] + IM_END]})
    return [Task(f"pref_{src}", "choice", docs, delimiter="", meta={"chat": True},
                 description=f"held-out preference pairs ({src}): chosen ranks above rejected")
            for src, docs in by.items()]
