"""Custom task files from Windows / other encodings, and regex scoring that cannot crash."""
import pytest

from puyu_lab.errors import InputError
from puyu_lab.eval.tasks import Task, load_task_file, score_generation


def test_bom_task_file_loads(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_text('{"prompt": "1+1=", "answer": "2"}\n{"prompt": "2+2=", "answer": "4"}\n', encoding="utf-8-sig")
    task = load_task_file(f, "generation")
    assert [d["answer"] for d in task.docs] == ["2", "4"]


def test_non_utf8_task_file_names_file_line_and_offset(tmp_path):
    f = tmp_path / "gbk.jsonl"
    first = '{"prompt": "ok", "answer": "1"}\n'.encode()
    f.write_bytes(first + '{"prompt": "中文", "answer": "2"}\n'.encode("gbk"))
    with pytest.raises(InputError, match=rf"gbk\.jsonl:2: bytes at offset {len(first) + 12} are not UTF-8.*UTF-8"):
        load_task_file(f, "generation")


def test_regex_optional_group_without_match_is_a_wrong_answer():
    task = Task("t", "generation", [{"prompt": "p", "answer": "42"}], match="regex", regex=r"answer(?: is (\d+))?")
    assert score_generation(task, "the answer", "42") == 0.0  # the group did not take part
    assert score_generation(task, "the answer is 42", "42") == 1.0
    assert score_generation(task, "no idea", "42") == 0.0
