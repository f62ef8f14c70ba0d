"""Chat template, loss mask, SFT data and custom-file validation (no training)."""
import json

import pytest

from puyu_lab.contracts.calculator import CALCULATOR_SCHEMA, CalculatorError, calculate
from puyu_lab.contracts.dates import add_days
from puyu_lab.errors import InputError
from puyu_lab.finetune import data as D
from puyu_lab.models.template import CHAT_TEMPLATE, IGNORE, IM_END, encode_chat, tool_call
from puyu_lab.finetune.train import encode_all


TOOL = [{"role": "system", "content": "你可以使用以下工具。"},
        {"role": "system", "name": "<|plugin|>", "content": json.dumps([CALCULATOR_SCHEMA], ensure_ascii=False)},
        {"role": "user", "content": "12*7 等于多少？"},
        {"role": "assistant", "content": "我来算一下。" + tool_call("calculator", {"expression": "12*7"})},
        {"role": "environment", "name": "<|plugin|>", "content": '{"result": 84}'},
        {"role": "assistant", "content": "结果是 84。"}]


def test_template_renders_internlm2_format(tok):
    text = tok.apply_chat_template(TOOL[2:4], tokenize=False)
    assert text == ("<s><|im_start|>user\n12*7 等于多少？<|im_end|>\n<|im_start|>assistant\n我来算一下。"
                    '<|action_start|><|plugin|>\n{"name": "calculator", "parameters": {"expression": "12*7"}}'
                    "<|action_end|>\n<|im_end|>\n")
    assert tok.apply_chat_template(TOOL[:1], tokenize=False, add_generation_prompt=True).endswith(
        "<|im_end|>\n<|im_start|>assistant\n")
    assert "system name=<|plugin|>\n" in tok.apply_chat_template(TOOL, tokenize=False)
    assert "tojson" not in CHAT_TEMPLATE  # transformers and llama.cpp's jinja differ on it


def test_loss_mask_trains_exactly_the_assistant_turns(tok):
    enc = encode_chat(tok, TOOL)
    assert enc.input_ids == tok.apply_chat_template(TOOL, tokenize=True, return_dict=False)
    assert enc.problems == []
    trained = [i for i, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE]
    # the trained tokens are the two assistant turns, each closed by <|im_end|>
    text = tok.decode(trained)
    assert text == TOOL[3]["content"] + IM_END + TOOL[5]["content"] + IM_END
    assert tok.convert_tokens_to_ids("<|action_start|>") in trained and tok.convert_tokens_to_ids("<|plugin|>") in trained
    assert tok.convert_tokens_to_ids("<|im_start|>") not in trained


def test_checks_flag_a_turn_without_its_end_token(tok):
    cut = encode_chat(tok, TOOL, max_length=len(encode_chat(tok, TOOL).input_ids) - 3)
    assert any("does not end in <|im_end|> (cut off by max_length)" in p for p in cut.problems)
    broken = CHAT_TEMPLATE.replace("'<|im_end|>\n'", "'\n'")  # a template that forgets the end token
    assert broken != CHAT_TEMPLATE
    t = tok
    old = t.chat_template
    t.chat_template = broken
    try:
        enc = encode_chat(t, TOOL[2:4])
        assert any("does not end in <|im_end|>" in p for p in enc.problems)
    finally:
        t.chat_template = old


def test_long_conversations_lose_whole_turns(tok):
    long = [m for i in range(12) for m in ({"role": "user", "content": f"第{i}个问题，请详细回答。"},
                                          {"role": "assistant", "content": "这是一个很长的回答。" * 3})]
    rows, info = encode_all(tok, [{"messages": long}], max_length=120)
    assert info["truncated"] == 1 and len(rows) == 1
    ids, labels = rows[0]["input_ids"], rows[0]["labels"]
    assert len(ids) <= 120
    end = tok.convert_tokens_to_ids(IM_END)
    last = max(i for i, lab in enumerate(labels) if lab != IGNORE)
    assert ids[last] == end  # the last trained token still closes its turn


def test_sft_data_kinds_and_heldout_sets():
    s = D.SFTDataSettings(assistant_name="阿浦", owner="小明", dialogs_zh=30, dialogs_en=20)
    reviews = [{"text": "房间干净，服务好。", "label": "pos"}, {"text": "太差了，不会再来。", "label": "neg"},
               {"text": "新闻正文", "label": None}]
    mix = D.build_mixture(s, reviews)
    kinds = {ex["kind"] for ex in mix["train"]}
    assert kinds == {"self", "dialog", "sentiment", "tool", "date", "notool"}
    train_qs = {ex["messages"][0]["content"] for ex in mix["train"] if ex["kind"] == "self"}
    held = {h["prompt"] for h in mix["selfcog_heldout"]}
    assert held and not (held & train_qs)  # paraphrases never trained on
    assert all("阿浦" in ex["messages"][-1]["content"] for ex in mix["train"] if ex["kind"] == "self")
    sent = [ex for ex in mix["train"] if ex["kind"] == "sentiment"]
    assert sorted(ex["messages"][-1]["content"] for ex in sent) == ["正面", "负面"]
    train_exprs = {json.loads(ex["messages"][3]["content"].split("\n", 1)[1].split("<|action_end|>")[0])
                   ["parameters"]["expression"] for ex in mix["train"] if ex["kind"] == "tool"}
    held_exprs = {t["expression"] for t in mix["arithmetic_heldout"]}
    assert held_exprs and not (held_exprs & train_exprs)
    for t in mix["arithmetic_heldout"]:
        assert calculate(t["expression"]) == t["result"]
    # dates: held-out (date, days) pairs never trained on, each with the tool's own answer
    calls = [json.loads(ex["messages"][3]["content"].split("\n", 1)[1].split("<|action_end|>")[0])["parameters"]
             for ex in mix["train"] if ex["kind"] == "date"]
    held_dates = {(t["date"], t["days"]) for t in mix["date_heldout"]}
    assert len(calls) == s.date_examples and len(held_dates) == s.date_heldout
    assert not held_dates & {(c["date"], c["days"]) for c in calls}
    assert all(add_days(t["date"], t["days"])["date"] == t["result"] for t in mix["date_heldout"])
    # no-tool: the tools are offered and the reply is not a call; the held-out questions are never a
    # training conversation's first question
    notool = [ex for ex in mix["train"] if ex["kind"] == "notool"]
    assert notool and all(ex["messages"][1]["name"] == "<|plugin|>" for ex in notool)
    assert not any("<|action_start|>" in ex["messages"][-1]["content"] for ex in notool)
    firsts = {next(m["content"] for m in ex["messages"] if m["role"] == "user") for ex in mix["train"]}
    held_nt = [h["prompt"] for h in mix["notool_heldout"]]
    assert {h["kind"] for h in mix["notool_heldout"]} == {"self", "control", "dialog"}
    assert len(held_nt) >= 40 and not set(held_nt) & firsts


def test_chatterbot_dialogs_are_real_and_alternate():
    dialogs = D.chatterbot_dialogs()
    assert len(dialogs) > 1000
    assert {d["lang"] for d in dialogs} == {"zh", "en"}
    from puyu_lab.contracts.dialogs import CHATTERBOT_SKIP

    assert not {d["source"] for d in dialogs} & CHATTERBOT_SKIP
    for d in dialogs[:200]:
        roles = [m["role"] for m in d["messages"]]
        assert roles[::2] == ["user"] * len(roles[::2]) and roles[1::2] == ["assistant"] * len(roles[1::2])
        assert roles[-1] == "assistant"


def test_calculator_is_safe():
    assert calculate("(28+14)*17") == 714 and calculate("7/2") == 3.5 and calculate("2**10") == 1024
    for bad, why in [("__import__('os')", "function calls"), ("x + 1", "names"), ("(1).real", "attributes"),
                     ("10**10**10", "exponent"), ("1/0", "division by zero"), ("[1][0]", "not allowed"), ("", "give")]:
        with pytest.raises(CalculatorError, match=why):
            calculate(bad)


def test_custom_jsonl_reports_every_bad_line(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join([
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}),
        "{broken",
        json.dumps({"messages": [{"role": "user", "content": "no reply"}]}),
        "",
        json.dumps({"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]}),
        json.dumps({"text": "not a chat"}),
        json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]}),
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"},
                                 {"role": "assistant", "content": "a"}]}),
    ]) + "\n", encoding="utf-8")
    good, bad = D.load_custom(f)
    assert len(good) == 2 and good[1]["messages"][1] == {"role": "environment", "content": "r", "name": "<|plugin|>"}
    got = [(b.line, b.reason) for b in bad]
    assert [g[0] for g in got] == [2, 3, 5, 6, 7]
    assert "invalid JSON" in got[0][1] and "no non-empty assistant message" in got[1][1]
    assert "'wizard'" in got[2][1] and "'messages'" in got[3][1] and "content must be a string" in got[4][1]


def test_custom_alpaca_json_line_numbers_and_all_bad(tmp_path):
    f = tmp_path / "a.json"
    f.write_text('[\n  {"instruction": "翻译", "input": "hello", "output": "你好"},\n'
                 '  {"instruction": "", "output": "x"},\n  {"instruction": "q",\n   "output": 3},\n'
                 '  "just a string"\n]\n', encoding="utf-8")
    good, bad = D.load_custom(f)
    assert len(good) == 1 and good[0]["messages"][0]["content"] == "翻译\nhello"
    assert [(b.line, b.reason.split(" ")[1]) for b in bad] == [(3, "'instruction'"), (4, "'output'"), (6, "an")]
    none = tmp_path / "none.jsonl"
    none.write_text('{"messages": []}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"none\.jsonl: no valid record \(2 bad: line 1: .*line 2: invalid JSON"):
        D.load_custom(none)
    with pytest.raises(InputError, match=r"unknown format '\.csv'"):
        (tmp_path / "x.csv").write_text("a", encoding="utf-8")
        D.load_custom(tmp_path / "x.csv")
