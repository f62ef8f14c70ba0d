"""Evaluation tasks: three kinds, lm-evaluation-harness conventions, built from the chain's held-out data.

* ``perplexity`` — docs ``{"text"}``; lm-eval's ``loglikelihood_rolling`` (disjoint windows);
  metrics word_perplexity, byte_perplexity, bits_per_byte.
* ``choice`` — docs ``{"context", "choices": [...], "gold": i}``; the log-likelihood of each choice
  after ``context + delimiter``; metrics acc and acc_norm (normalised by the choice's length in
  characters), as lm-eval computes them. ``mode="ppl"`` is OpenCompass's whole-sequence PPL mode:
  the lowest mean loss over context + choice wins (a separately named variant).
* ``generation`` — docs ``{"prompt" | "messages", "answer"}``; greedy decoding until a stop
  sequence; ``match`` = exact | contains | regex (the regex's first group is the answer) | tool (the
  tool the reply calls, or ``none``: with ``keep_special`` the action tokens stay in the output).

Custom tasks: one JSON object per line — see :data:`SCHEMA`; every bad line is reported.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..contracts.scoring import MATCHES, answer_matches
from ..errors import InputError, Msg, jsonl_records, read_text_file, zh_of

KINDS = ("perplexity", "choice", "generation")
SCHEMA = {
    "perplexity": {"text": "str"},
    "choice": {"context": "str", "choices": "list[str] (≥ 2)", "gold": "int (index into choices)"},
    "generation": {"prompt": "str (or messages: list of {role, content})", "answer": "str"},
}


@dataclass
class Task:
    name: str
    kind: str
    docs: list[dict]
    mode: str = "ll"  # choice: "ll" (lm-eval) or "ppl" (OpenCompass PPL)
    delimiter: str = " "  # choice: between context and choice (lm-eval's target_delimiter)
    match: str = "contains"  # generation
    regex: str | None = None
    stop: tuple[str, ...] = ("\n\n",)
    max_new_tokens: int = 32
    chat: bool = True  # generation: wrap the prompt in the chat template when the model has one
    keep_special: bool = False  # generation: keep special tokens (an agent's <|action_start|>) in the output
    description: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def metrics(self) -> tuple[str, ...]:
        return {"perplexity": ("word_perplexity", "byte_perplexity", "bits_per_byte"),
                "choice": ("acc", "acc_norm"), "generation": ("score",)}[self.kind]

    @property
    def main_metric(self) -> str:
        return {"perplexity": "bits_per_byte", "choice": "acc", "generation": "score"}[self.kind]

    def signature(self) -> str:
        import hashlib

        h = hashlib.sha1(json.dumps([self.kind, self.mode, self.delimiter, self.match, self.regex, list(self.stop),
                                     self.max_new_tokens, self.chat, self.docs]
                                    + ([self.keep_special] if self.keep_special else []), ensure_ascii=False,
                                    sort_keys=True).encode()).hexdigest()
        return h[:12]


def _check_doc(kind: str, d) -> str | None:
    if not isinstance(d, dict):
        return Msg("expected a JSON object", "应当是一个 JSON 对象")
    if kind == "perplexity":
        if not isinstance(d.get("text"), str) or not d["text"]:
            return Msg("field 'text' is missing or not a non-empty string", "字段 'text' 缺失，或不是非空字符串")
    elif kind == "choice":
        if not isinstance(d.get("context"), str):
            return Msg("field 'context' is missing or not a string", "字段 'context' 缺失，或不是字符串")
        ch = d.get("choices")
        if not isinstance(ch, list) or len(ch) < 2 or not all(isinstance(c, str) and c for c in ch):
            return Msg("field 'choices' must be a list of at least 2 non-empty strings",
                       "字段 'choices' 必须是至少含 2 个非空字符串的列表")
        g = d.get("gold")
        if not isinstance(g, int) or isinstance(g, bool) or not 0 <= g < len(ch):
            return Msg(f"field 'gold' must be an integer index into choices (0…{len(ch) - 1})",
                       f"字段 'gold' 必须是 choices 的整数下标（0…{len(ch) - 1}）")
    elif kind == "generation":
        if not isinstance(d.get("answer"), str):
            return Msg("field 'answer' is missing or not a string", "字段 'answer' 缺失，或不是字符串")
        if "messages" in d:
            m = d["messages"]
            if not isinstance(m, list) or not m or not all(isinstance(x, dict) and isinstance(x.get("content"), str)
                                                            and x.get("role") in ("system", "user", "assistant")
                                                            for x in m):
                return Msg("field 'messages' must be a list of {role: system|user|assistant, content: str}",
                           "字段 'messages' 必须是由 {role: system|user|assistant, content: str} 组成的列表")
        elif not isinstance(d.get("prompt"), str) or not d["prompt"]:
            return Msg("field 'prompt' (or 'messages') is missing or not a non-empty string",
                       "字段 'prompt'（或 'messages'）缺失，或不是非空字符串")
    return None


def load_task_file(path: str | Path, kind: str, name: str | None = None, **options) -> Task:
    """A custom task from JSONL (one doc per line, fields per :data:`SCHEMA`)."""
    path = Path(path)
    if kind not in KINDS:
        raise InputError(f"unknown task kind {kind!r}; choose one of {', '.join(KINDS)}",
                         zh=f"没有 {kind!r} 这种任务类型；可选：{', '.join(KINDS)}")
    text = read_text_file(path, "task file")
    docs, bad = [], []
    for ln, d, err in jsonl_records(text):
        why = err or _check_doc(kind, d)
        if why:
            bad.append(Msg(f"line {ln}: {why}", f"第 {ln} 行：{zh_of(why)}"))
        else:
            docs.append(d)
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        more_zh = f"（另有 {len(bad) - 5} 行）" if len(bad) > 5 else ""
        raise InputError(f"{path}: {len(bad)} bad line(s) for a {kind} task — " + "; ".join(bad[:5]) + more +
                         f". Expected fields: {SCHEMA[kind]}",
                         zh=f"{path}：作为 {kind} 任务，有 {len(bad)} 行不合格——" + "；".join(map(zh_of, bad[:5]))
                            + more_zh + f"。应有的字段：{SCHEMA[kind]}")
    if not docs:
        raise InputError(f"{path}: no documents. Expected one JSON object per line with {SCHEMA[kind]}",
                         zh=f"{path}：没有任何文档。应当每行一个 JSON 对象，字段为 {SCHEMA[kind]}")
    if options.get("match", "contains") not in MATCHES:
        raise InputError(f"match={options['match']!r}: choose one of {', '.join(MATCHES)}",
                         zh=f"match={options['match']!r}：可选值为 {', '.join(MATCHES)}")
    return Task(name or path.stem, kind, docs, **options)


def score_generation(task: Task, output: str, answer: str) -> float:
    """1.0 when ``output`` answers ``answer`` by the task's ``match`` (contracts.scoring, the deploy stage's rule too)."""
    return float(answer_matches(task.match, output, answer, task.regex))


def word_count(text: str) -> int:
    """lm-eval's word count for word perplexity: pieces between runs of whitespace."""
    return len(re.split(r"\s+", text))
