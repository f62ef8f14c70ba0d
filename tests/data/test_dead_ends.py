"""No dead ends for one's own data: every refusal is one InputError that says what to do, and the
option it names can be followed where the learner is (Python, CLI; the panel's: tests/panels/test_data.py)."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from puyu_lab.data.pipeline import load_corpus, prepare
from puyu_lab.data.sources import load_local
from puyu_lab.errors import InputError

from .helpers import news, write_jsonl  # noqa: F401 (news: a fixture)


def test_skip_bad_from_prepare_is_counted_in_the_manifest(news, tmp_path, ws):
    src = write_jsonl(tmp_path / "mine.jsonl", news[:3], bad_line=True)
    with pytest.raises(InputError, match=r"mine\.jsonl:2: malformed JSON.*skip_bad=True"):
        prepare([str(src)], show_progress=False)
    run = prepare([str(src)], show_progress=False, skip_bad=True)
    assert [(ln, why.split(" (")[0]) for _, ln, why in run.skipped] == [(2, "malformed JSON")]
    art = run.export(ws)
    assert art.metrics["skipped_records"] == 1
    stats = json.loads(art.file("stats.json").read_text(encoding="utf-8"))
    assert stats["skipped_records"][0]["line"] == 2 and stats["skipped_records"][0]["file"].endswith("mine.jsonl")


def test_cli_advises_and_accepts_skip_bad(news, tmp_path):
    src = write_jsonl(tmp_path / "mine.jsonl", news[:3], bad_line=True)
    cmd = [sys.executable, "-m", "puyu_lab", "data", "clean", "--sources", str(src)]
    out = subprocess.run(cmd + ["--home", str(tmp_path / "ws1")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "mine.jsonl:2: malformed JSON" in out.stderr
    assert "--skip-bad" in out.stderr and "skip_bad=True" not in out.stderr, out.stderr
    assert not (tmp_path / "ws1" / "corpus").exists()
    out = subprocess.run(cmd + ["--home", str(tmp_path / "ws2"), "--skip-bad"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1 record(s) skipped" in out.stdout and "'skipped_records': 1" in out.stdout


def test_utf8_bom_is_accepted(news, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", news[:2], bom=True)
    pd.DataFrame({"text": news[2:4], "label": ["pos", "neg"]}).to_csv(tmp_path / "b.csv", index=False,
                                                                     encoding="utf-8-sig")
    (tmp_path / "c.txt").write_text(news[4], encoding="utf-8-sig")
    assert (tmp_path / "b.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    df, report = load_local(tmp_path)
    assert sorted(df.text) == sorted(news[:5]) and report.skipped == []
    assert not any(t.startswith("\ufeff") for t in df.text)
    assert sorted(df.label.dropna()) == ["neg", "pos"]


def test_everything_filtered_is_refused_with_the_rules_to_loosen(ws):
    raw = pd.DataFrame({"id": [f"x/{i}" for i in range(4)], "source": "x", "label": None,
                        "text": ["今天的天气很好。", "我们去公园散步了。", "这本书很有意思。", "他在学校读书。"]})
    run = prepare(raw=raw, show_progress=False)
    top = run.verdict().reasons().index[0]  # the rule that dropped most
    with pytest.raises(InputError, match=rf"0 documents kept of 4 — loosen the recipe: {top} dropped 4 \(.*threshold"):
        run.export(ws)
    assert ws.list() == []


def test_small_corpus_gets_a_readable_artifact_with_both_splits(news, ws, tmp_path):
    # one document kept: train 1, held-out empty — and still readable
    art = prepare(raw=load_local(write_jsonl(tmp_path / "one.jsonl", news[:1]))[0], show_progress=False).export(ws)
    assert (art.metrics["train"], art.metrics["heldout"]) == (1, 0)
    assert len(load_corpus(ws, "train")) == 1 and len(load_corpus(ws, "heldout")) == 0
    # a few documents: at least one is held out, and the manifest says why
    art = prepare(raw=load_local(write_jsonl(tmp_path / "few.jsonl", news[:4]))[0], show_progress=False).export(ws)
    kept = art.metrics["documents"]
    assert kept >= 2 and art.metrics["heldout"] >= 1 and art.metrics["train"] >= 1
    assert len(load_corpus(ws, "train")) + len(load_corpus(ws, "heldout")) == kept
    if art.metrics["heldout"] == 1 and "split_note" in art.metrics:
        assert "held out" in art.metrics["split_note"]
