"""Prompt forms the fine-tune data teaches and the eval and agent stages ask."""
from __future__ import annotations

SENTIMENT_PROMPT = "判断这条评论的情感是正面还是负面：\n{text}"
SENTIMENT_ANSWER = {"pos": "正面", "neg": "负面"}
SENTIMENT_MAX_CHARS = 40  # the opening of a review carries its sentiment; short prompts train fast

ARITHMETIC_QUESTION = "{e} 等于多少？"  # the first of the fine-tune data's question forms
TOOL_SYSTEM = "你可以使用以下工具。"  # InternLM2 writes the tool list as a `system name=<|plugin|>` message after it

ARITHMETIC_HELDOUT = "arithmetic_heldout"  # the sft/data part: {"expression", "result"} per line
SELFCOG_HELDOUT = "selfcog_heldout"  # the sft/data part: {"prompt", "expect", …} per line
