"""The data stage end to end: load → signals → rules → PII → dedup → ``corpus/clean``.

:func:`prepare` does the heavy, threshold-independent work once (signals and MinHash for every
raw document). :meth:`CleaningRun.verdict` applies any recipe to it in milliseconds;
:meth:`CleaningRun.export` writes the chosen result as the ``corpus/clean`` artifact.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import xxhash

from ..artifacts import load_corpus  # noqa: F401 (the reader of what this stage writes)
from ..errors import InputError, Msg
from ..events import Emitter, Event, StopFlag
from ..workspace import Artifact, Workspace
from . import pii
from .dedup import DedupResult, compute_dedup, estimated_jaccard, shingles, true_jaccard
from .filters import GROUPS, RULES_BY_NAME, Recipe, Verdict, apply
from .signals import compute_signals
from .sources import DEFAULT_SOURCES, load_sources

ARTIFACT = "corpus/clean"


def _split_hash(doc_id: str) -> int:
    return xxhash.xxh3_64_intdigest(doc_id.encode()) % 10_000


def is_heldout(doc_id: str, fraction: float) -> bool:
    """Stable split by id hash: adding documents never moves others between splits."""
    return _split_hash(doc_id) < fraction * 10_000


def split_documents(ids: list[str], fraction: float) -> tuple[list[str], str | None]:
    """``"train"`` / ``"heldout"`` per document by :func:`is_heldout`, except that a small corpus
    (≥ 2 documents) whose hash split leaves one side empty gets one document moved there: the one
    closest to the boundary. Returns the splits and a note saying so (None when nothing moved)."""
    splits = ["heldout" if is_heldout(i, fraction) else "train" for i in ids]
    if len(ids) < 2 or ("train" in splits and "heldout" in splits):
        return splits, None
    h = [_split_hash(i) for i in ids]
    if "heldout" not in splits:
        j = min(range(len(ids)), key=lambda k: h[k])
        splits[j] = "heldout"
        note = (f"the {fraction:.0%} hash split held out none of the {len(ids)} documents: {ids[j]!r} was held "
                "out instead, so the held-out loss has something to measure (more documents make this unneeded)")
    else:
        j = max(range(len(ids)), key=lambda k: h[k])
        splits[j] = "train"
        note = (f"the {fraction:.0%} hash split held out all {len(ids)} documents: {ids[j]!r} was moved to train")
    return splits, note


def _loosen_advice(v: Verdict, k: int = 3) -> Msg:
    """The rules that dropped most documents, each with where to loosen it (``.zh``: in Chinese)."""
    parts, parts_zh = [], []
    for reason, n in v.reasons().head(k).items():
        rule = RULES_BY_NAME.get(reason)
        if rule is not None:
            how = (f"raise/lower its threshold (recipe.set({reason!r}, …) or its slider) or switch off "
                   f"{rule.group} ({GROUPS[rule.group]})")
            how_zh = (f"调高或调低它的阈值（recipe.set({reason!r}, …) 或对应的滑块），或者关掉 "
                      f"{rule.group}（{GROUPS[rule.group]}）")
        elif reason == "language":
            how = "add the language to recipe.languages or lower recipe.min_lang_score"
            how_zh = "把该语言加进 recipe.languages，或调低 recipe.min_lang_score"
        elif reason == "empty":
            how = "the documents have no text left"
            how_zh = "这些文档已经没有剩下的文本"
        else:
            how = "switch that step off in the recipe"
            how_zh = "在清洗配方中关掉这一步"
        parts.append(f"{reason} dropped {n:,} ({how})")
        parts_zh.append(f"{reason} 删掉了 {n:,} 篇（{how_zh}）")
    return Msg("; ".join(parts), "；".join(parts_zh))


@dataclass
class CleaningRun:
    raw: pd.DataFrame
    signals: pd.DataFrame
    dedup: DedupResult
    recipe: Recipe = field(default_factory=Recipe)
    sources: tuple = DEFAULT_SOURCES
    timings: dict[str, float] = field(default_factory=dict)
    # records the loaders skipped (``skip_bad``): (file, line, reason) each
    skipped: list = field(default_factory=list)

    def verdict(self, recipe: Recipe | None = None) -> Verdict:
        return apply(self.signals, recipe or self.recipe, exact_key=self.dedup.exact_key, cluster=self.dedup.cluster)

    def table(self, verdict: Verdict | None = None) -> pd.DataFrame:
        """Every document with its verdict: id, source, lang, kept, reason, and the text."""
        v = verdict or self.verdict()
        return pd.DataFrame({"id": self.raw["id"].to_numpy(), "source": self.raw["source"].to_numpy(),
                             "lang": self.signals["lang"].to_numpy(), "kept": v.keep, "reason": v.reason,
                             "stage": v.stage, "text": self.raw["text"].to_numpy()})

    def final_text(self, i: int, recipe: Recipe | None = None) -> tuple[str, dict[str, int]]:
        """What a kept document becomes: C4's line rules applied (if on), then PII scrubbed (if on)."""
        r = recipe or self.recipe
        text = self.signals["c4_text"].iat[i] if r.groups.get("c4", True) else self.raw["text"].iat[i]
        if r.pii:
            return pii.scrub(text)
        return text, dict.fromkeys(pii.KINDS, 0)

    def examples(self, reason: str, k: int = 3, verdict: Verdict | None = None) -> pd.DataFrame:
        v = verdict or self.verdict()
        idx = np.flatnonzero(v.reason == reason)[:k]
        return self.raw.iloc[idx][["id", "source", "text"]]

    def pii_examples(self, k: int = 4, width: int = 240) -> tuple[dict[str, int], list[tuple[str, str]]]:
        """PII found per kind (all documents), and up to ``k`` excerpts before / after scrubbing
        (each starts a little before the first ``@`` or digit of a document that has PII)."""
        sig = self.signals
        totals = {kind: int(sig[f"pii_{kind}"].sum()) for kind in pii.KINDS}
        has = np.flatnonzero(sig[[f"pii_{kind}" for kind in pii.KINDS]].sum(axis=1).to_numpy() > 0)[:k]
        out = []
        for i in has:
            text = self.raw["text"].iat[i]
            m = min((text.find(c) for c in "@0123456789" if text.find(c) >= 0), default=0)
            a = max(0, m - 80)
            before = text[a:a + width]
            out.append((before, pii.scrub(before)[0]))
        return totals, out

    def near_duplicate_pairs(self, k: int = 5) -> list[dict]:
        """Pairs from the largest near-duplicate clusters, with estimated and true Jaccard."""
        out = []
        for root, size in self.dedup.clusters().head(k).items():
            members = np.flatnonzero(self.dedup.cluster == root)
            a, b = int(members[0]), int(members[1])
            out.append({
                "cluster": int(root), "size": int(size), "a": self.raw["id"].iat[a], "b": self.raw["id"].iat[b],
                "text_a": self.raw["text"].iat[a], "text_b": self.raw["text"].iat[b],
                "estimated_jaccard": estimated_jaccard(self.dedup.signatures[a], self.dedup.signatures[b]),
                "true_jaccard": true_jaccard(shingles(self.raw["text"].iat[a]), shingles(self.raw["text"].iat[b])),
            })
        return out

    def export(self, ws: Workspace, recipe: Recipe | None = None, *, name: str = ARTIFACT,
               on_event: Callable[[Event], None] | None = None) -> Artifact:
        import datasets

        r = recipe or self.recipe
        em = Emitter("data", on_event)
        t0 = time.perf_counter()
        v = self.verdict(r)
        kept = np.flatnonzero(v.keep)
        if len(kept) == 0:  # refused before anything is written: the tokenizer could not train on it
            advice = _loosen_advice(v)
            raise InputError(f"0 documents kept of {len(self.raw):,} — loosen the recipe: {advice}; "
                             "nothing was written",
                             zh=f"{len(self.raw):,} 篇文档一篇也没有留下——请放宽清洗配方：{advice.zh}；"
                                "没有写入任何内容")
        splits, split_note = split_documents([self.raw["id"].iat[i] for i in kept], r.heldout_fraction)
        rows, pii_total = [], dict.fromkeys(pii.KINDS, 0)
        for i, split in zip(kept, splits):
            text, counts = self.final_text(int(i), r)
            for kk, n in counts.items():
                pii_total[kk] += n
            doc_id = self.raw["id"].iat[i]
            rows.append({"id": doc_id, "source": self.raw["source"].iat[i], "lang": self.signals["lang"].iat[i],
                         "label": self.raw["label"].iat[i], "text": text,
                         "split": split})
        df = pd.DataFrame(rows, columns=["id", "source", "lang", "label", "text", "split"])
        df["label"] = df["label"].astype("string")
        dd = datasets.DatasetDict({
            split: datasets.Dataset.from_pandas(df[df.split == split].drop(columns="split"), preserve_index=False)
            for split in ("train", "heldout")
        })
        stats = self.stats(v, df, pii_total)
        stats["skipped_records"] = [{"file": f, "line": ln, "reason": why} for f, ln, why in self.skipped]
        if split_note:
            stats["split_note"] = split_note
            em.emit("warning", message=split_note)
        with ws.write(name, kind="corpus", stage="data", params={
            "sources": [str(s) for s in self.sources], "recipe": r.to_dict(),
            "documents_raw": len(self.raw)}) as w:
            # an empty split still gets one (empty) shard, or load_from_disk fails on it (IndexError)
            dd.save_to_disk(str(w.path / "dataset"), num_shards={k: 1 for k, d in dd.items() if len(d) == 0})
            (w.path / "recipe.json").write_text(r.to_json(), encoding="utf-8")
            (w.path / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=1), encoding="utf-8")
            dropped = self.table(v)
            dropped[~dropped.kept].drop(columns="kept").to_parquet(w.path / "dropped.parquet")
            sig = self.signals.drop(columns=["c4_text"]).assign(id=self.raw["id"].to_numpy(),
                                                                source=self.raw["source"].to_numpy())
            sig.to_parquet(w.path / "signals.parquet")
            w.metrics.update({
                "documents": int(len(df)), "characters": int(df.text.str.len().sum()),
                "kept_fraction": round(len(df) / max(1, len(self.raw)), 4),
                "train": int((df.split == "train").sum()), "heldout": int((df.split == "heldout").sum()),
                "pii_replaced": int(sum(pii_total.values())), "skipped_records": len(self.skipped),
                **({"split_note": split_note} if split_note else {}),
            })
        em.emit("exported", name=name, documents=len(df), seconds=time.perf_counter() - t0)
        return ws.get(name)

    def stats(self, v: Verdict, kept_df: pd.DataFrame, pii_total: dict[str, int]) -> dict:
        by_source = {}
        for src, g in self.raw.groupby("source", sort=False):
            idx = g.index.to_numpy()
            k = v.keep[self.raw.index.get_indexer(idx)]
            by_source[src] = {"raw_documents": int(len(g)), "raw_characters": int(g.text.str.len().sum()),
                              "kept_documents": int(k.sum()),
                              "kept_characters": int(self.signals["n_chars"].loc[idx][k].sum())}
        return {
            "funnel": v.funnel.to_dict("records"),
            "reasons": {k: int(n) for k, n in v.reasons().items()},
            "by_source": by_source,
            "languages": {k: int(n) for k, n in self.signals["lang"].value_counts().head(20).items()},
            "pii_replaced": pii_total,
            "near_duplicate_clusters": int(len(self.dedup.clusters())),
            "timings_s": {k: round(t, 2) for k, t in self.timings.items()},
        }


def prepare(sources=DEFAULT_SOURCES, *, limit_per_source: int | None = None, seed: int = 0,
            recipe: Recipe | None = None, raw: pd.DataFrame | None = None,
            on_event: Callable[[Event], None] | None = None, stop: StopFlag | None = None,
            show_progress: bool = True, skip_bad: bool = False) -> CleaningRun:
    """Load the sources and compute every signal and MinHash signature once.

    With ``skip_bad`` bad records in local files are skipped instead of refused, and counted in the
    corpus manifest (``skipped_records``; each one in ``stats.json``). A ``raw`` frame from
    ``load_sources(…, skip_bad=True)`` brings its skipped records along."""
    em = Emitter("data", on_event)
    timings = {}
    t = time.perf_counter()
    used = tuple(str(s) for s in sources) if raw is None else tuple(sorted(raw["source"].unique()))
    if raw is None:
        em.emit("start", step="load")
        raw = load_sources(sources, limit_per_source=limit_per_source, seed=seed, skip_bad=skip_bad)
    skipped = list(raw.attrs.get("skipped", []))
    raw = raw.reset_index(drop=True)
    timings["load"] = time.perf_counter() - t
    em.emit("loaded", documents=len(raw), characters=int(raw.text.str.len().sum()))
    t = time.perf_counter()
    sig = compute_signals(raw, on_event=on_event, stop=stop, show_progress=show_progress)
    timings["signals"] = time.perf_counter() - t
    r = recipe or Recipe()
    t = time.perf_counter()
    dd = compute_dedup(raw["text"].tolist(), sig["rule_lang"].tolist(), ngram=r.minhash_ngram, bands=r.minhash_bands,
                       rows=r.minhash_rows, seed=r.minhash_seed, on_event=on_event, stop=stop,
                       show_progress=show_progress)
    timings["minhash"] = time.perf_counter() - t
    if skipped:
        em.emit("warning", message=f"{len(skipped)} bad record(s) skipped (skip_bad)")
    return CleaningRun(raw, sig, dd, r, used, timings, skipped)
