"""What the data stage's tests share with the cleaning panel's (tests/panels/test_data.py)."""
import json

import pytest

from puyu_lab.data.sources import load_news_zh


@pytest.fixture(scope="module")
def news():
    """Real articles (People's Daily) that pass the default recipe."""
    df = load_news_zh()
    return [t for t in df.text.iloc[:40] if 300 < len(t) < 3000][:6]


def write_jsonl(path, texts, *, bad_line: bool = False, bom: bool = False):
    lines = [json.dumps({"text": t}, ensure_ascii=False) for t in texts]
    if bad_line:
        lines.insert(1, '{"text": "broken')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig" if bom else "utf-8")
    return path
