"""Prompt forms the fine-tune data teaches and the eval and agent stages ask."""
from __future__ import annotations

SENTIMENT_PROMPT = "判断这条评论的情感是正面还是负面：\n{text}"
SENTIMENT_ANSWER = {"pos": "正面", "neg": "负面"}
SENTIMENT_MAX_CHARS = 40  # the opening of a review carries its sentiment; short prompts train fast

ARITHMETIC_QUESTION = "{e} 等于多少？"  # the first of the fine-tune data's question forms
TOOL_SYSTEM = "你可以使用以下工具。"  # InternLM2 writes the tool list as a `system name=<|plugin|>` message after it

DATE_QUESTION = "{date} 之后 {days} 天是哪一天？"  # the first of the fine-tune data's date question forms

# phrasings no fine-tune conversation uses: the course assistant's held-out tasks are asked in these, so a
# success shows the skill and not a remembered sentence (finetune.data's ARITH_Q / DATE_Q are the trained ones)
ARITHMETIC_UNSEEN_FORMS = ("帮我算算 {e}。", "{e} 的值是多少？", "Tell me the value of {e}.", "请问 {e} 得几？")
DATE_UNSEEN_FORMS = ("{date} 往后数 {days} 天是几号？", "Which day comes {days} days after {date}?",
                     "{date} 再过 {days} 天是哪天？")

# phrasings only the RL stage asks in (issue #41): neither a fine-tune conversation nor a held-out task uses them, so
# GRPO's groups meet questions the assistant has not been taught to answer in one fixed way, and the held-out
# forms above stay unseen through RL too (tests/rl/test_tasks.py holds the three sets apart)
ARITHMETIC_RL_FORMS = ("计算一下：{e}", "{e} 算出来是多少？", "What do you get from {e}?", "Work out {e}.",
                       "{e} 的结果等于几？", "How much is {e}?")
DATE_RL_FORMS = ("{date} 加上 {days} 天是几月几日？", "{date} 过去 {days} 天之后是哪一天？", "{date} 以后第 {days} 天是星期几、几号？",
                 "Give the date {days} days after {date}.", "{days} days after {date}: which date?",
                 "Which day is {days} days after {date}?", "Add {days} days to {date}: which date?",
                 "Starting on {date}, what is the date after {days} days?")

ARITHMETIC_HELDOUT = "arithmetic_heldout"  # the sft/data part: {"expression", "result"} per line
SELFCOG_HELDOUT = "selfcog_heldout"  # the sft/data part: {"prompt", "expect", …} per line
DATE_HELDOUT = "date_heldout"  # the sft/data part: {"date", "days", "result", "weekday"} per line
# the sft/data part: {"prompt", "kind"} per line — questions that need no tool (asked with tools offered)
NOTOOL_HELDOUT = "notool_heldout"
