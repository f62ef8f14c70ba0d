"""Real corpora load; bad input fails with file, line and what to do; nothing half-written."""
import json

import pandas as pd
import pytest

from puyu_lab.data.pipeline import prepare
from puyu_lab.data.sources import (BUILTIN, load_local, load_news_zh, load_reviews_zh, strip_pos_tags)
from puyu_lab.errors import InputError


def test_builtin_corpora_are_real_and_sizable():
    news = load_news_zh()
    assert len(news) > 2000 and news.text.str.len().sum() > 1_500_000
    assert "/n" not in news.text.iloc[0] and "江泽民" in news.text.iloc[0]
    reviews = load_reviews_zh()
    assert set(reviews.label) == {"pos", "neg"} and len(reviews) > 30_000
    docs = BUILTIN["docs-en"]()
    assert docs.id.str.startswith("docs-en/pydoc/").sum() > 50 and docs.id.str.startswith("docs-en/pkg/").sum() > 20


def test_strip_pos_tags():
    assert strip_pos_tags("迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w") == "迈向充满希望的新世纪——"
    assert strip_pos_tags("[中央/n  人民/n  广播/vn  电台/n]nt  ，/w") == "中央人民广播电台，"


def test_local_formats(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "第一篇", "label": "pos"}\n\n{"text": "second"}\n', encoding="utf-8")
    (tmp_path / "b.csv").write_text("text,label\nhello,neg\n", encoding="utf-8")
    (tmp_path / "c.json").write_text(json.dumps([{"text": "json doc"}]), encoding="utf-8")
    (tmp_path / "d.txt").write_text("a whole file", encoding="utf-8")
    pd.DataFrame({"text": ["parquet doc"]}).to_parquet(tmp_path / "e.parquet")
    df, report = load_local(tmp_path, name="mine")
    assert sorted(df.text) == sorted(["第一篇", "second", "hello", "json doc", "a whole file", "parquet doc"])
    assert df.loc[df.text == "第一篇", "id"].item() == "mine/a.jsonl:1"
    assert df.loc[df.text == "second", "id"].item() == "mine/a.jsonl:3"
    assert df.loc[df.text == "hello", "label"].item() == "neg"
    assert report.skipped == []


def test_undecodable_bytes_name_file_and_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes("第一行\n第二行\n".encode() + "第三行是GBK".encode("gbk"))
    with pytest.raises(InputError, match=r"bad\.txt:3: .*not UTF-8.*iconv"):
        load_local(p)
    j = tmp_path / "bad.jsonl"
    j.write_bytes(b'{"text": "ok"}\n{"text": "' + "坏".encode("gbk") + b'"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2: not UTF-8"):
        load_local(j)


def test_malformed_jsonl_reports_every_line(tmp_path):
    p = tmp_path / "data.jsonl"
    p.write_text('{"text": "good one"}\n{"text": "broken\n{"content": "wrong field"}\n[1, 2]\n{"text": ""}\n'
                 '{"text": "good two"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"data\.jsonl:2: malformed JSON"):
        load_local(p)
    df, report = load_local(p, skip_bad=True)
    assert list(df.text) == ["good one", "good two"]
    assert [(line, why.split(" (")[0]) for _, line, why in report.skipped] == [
        (2, "malformed JSON"), (3, "no 'text' field"), (4, "not a JSON object"), (5, "the text field is empty")]
    assert "4 record(s) skipped" in report.summary()


def test_empty_file_and_no_valid_records(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match=r"empty\.jsonl: the file is empty"):
        load_local(tmp_path / "empty.jsonl")
    (tmp_path / "none.jsonl").write_text('{"x": 1}\n')
    with pytest.raises(InputError, match="no valid documents"):
        load_local(tmp_path / "none.jsonl", skip_bad=True)
    with pytest.raises(InputError, match="no such file"):
        load_local(tmp_path / "missing.jsonl")


def test_huge_single_document_is_refused_clearly(tmp_path):
    p = tmp_path / "huge.jsonl"
    big = "数据" * (25 * 1024 * 1024 // 2)  # 25 M characters, ~50 MB of Chinese UTF-8... and a second doc
    p.write_text(json.dumps({"text": big}, ensure_ascii=False) + '\n{"text": "small"}\n', encoding="utf-8")
    assert p.stat().st_size > 50 * 1024 * 1024 * 0.9
    with pytest.raises(InputError, match=r"huge\.jsonl:1: a single document of 26,214,400 characters exceeds"):
        load_local(p)
    df, report = load_local(p, skip_bad=True)
    assert list(df.text) == ["small"] and len(report.skipped) == 1


def test_failed_export_leaves_no_artifact(ws, monkeypatch):
    raw = pd.DataFrame({"id": ["x/1", "x/2"], "source": "x", "label": None,
                        "text": ["今天的天气非常好，我们一家人去公园散步，孩子们在草地上放风筝，玩得很开心，直到傍晚才回家。",
                                 "The quick brown fox jumps over the lazy dog again and again."]})
    run = prepare(raw=raw, show_progress=False)
    import datasets

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", boom)
    with pytest.raises(OSError, match="disk full"):
        run.export(ws)
    assert not ws.exists("corpus/clean") and ws.list() == []


def test_hub_dataset_offline_says_so(monkeypatch):
    from puyu_lab.data.sources import load_hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError, match="offline.*built-in sources"):
        load_hf("wikitext")


def test_cli_clean_on_a_local_file(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "mine.jsonl"
    src.write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in [
        "北京的冬天很冷，但是人们的生活依然丰富多彩。每到周末，很多家庭都会去公园散步，或者去博物馆参观。",
        "孩子们在冰面上滑冰，老人们在湖边下棋，年轻人则喜欢在咖啡馆里读书和聊天，这座城市有着悠久的历史。",
    ]) + "\n", encoding="utf-8")
    home = tmp_path / "ws"
    out = subprocess.run([sys.executable, "-m", "puyu_lab", "data", "clean", "--sources", str(src), "--home", str(home)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote corpus/clean" in out.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n', encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "puyu_lab", "data", "clean", "--sources", str(bad), "--home",
                          str(tmp_path / "ws2")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "bad.jsonl:2: malformed JSON" in out.stderr
    assert not (tmp_path / "ws2" / "corpus").exists()
