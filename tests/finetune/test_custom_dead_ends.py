"""Custom SFT files: a Windows BOM is fine; a non-string name is refused with its line and field."""
import json

from puyu_lab.finetune import data as D


def chat(**extra):
    return {"messages": [{"role": "user", "content": "你好", **extra}, {"role": "assistant", "content": "你好！"}]}


def test_bom_jsonl_and_alpaca_load(tmp_path):
    j = tmp_path / "d.jsonl"
    j.write_text(json.dumps(chat(), ensure_ascii=False) + "\n", encoding="utf-8-sig")
    good, bad = D.load_custom(j)
    assert len(good) == 1 and bad == []
    a = tmp_path / "a.json"
    a.write_text(json.dumps([{"instruction": "翻译", "input": "hello", "output": "你好"}], ensure_ascii=False),
                 encoding="utf-8-sig")
    good, bad = D.load_custom(a)
    assert len(good) == 1 and bad == []


def test_non_string_name_is_rejected_with_line_and_field(tmp_path):
    j = tmp_path / "d.jsonl"
    j.write_text("\n".join(json.dumps(c, ensure_ascii=False) for c in [chat(), chat(name=7), chat(name="小明")]) + "\n",
                 encoding="utf-8")
    good, bad = D.load_custom(j)
    assert len(good) == 2
    assert [(b.line, b.reason.split(" is ")[0]) for b in bad] == [(2, "messages[0].name")]
    assert "not a string" in bad[0].reason
