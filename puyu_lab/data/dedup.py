"""Deduplication: exact (normalized hash), then MinHash LSH near-duplicates.

MinHash follows the usual recipe (and datatrove's defaults): 5-gram shingles — character 5-grams
for Chinese, word 5-grams otherwise — 14 bands × 8 rows = 112 permutations of the universal
hash functions (splitmix64 with per-permutation seeds, fixed seed); documents sharing any band are candidates;
union-find turns candidate pairs into clusters, and one document per cluster is kept.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import xxhash

from ..errors import InputError
from ..events import Emitter, Event, StopFlag, progress
from .text import CJK_RE, codepoints, substring_hashes

_WS_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"\w+")


def normalize(text: str) -> str:
    return _WS_RE.sub(" ", text.lower()).strip()


def exact_key(text: str) -> int:
    """64-bit hash of the normalized text (lower-cased, whitespace collapsed)."""
    return xxhash.xxh3_64_intdigest(normalize(text).encode("utf-8"))


def shingles(text: str, n: int = 5, cjk: bool | None = None) -> np.ndarray:
    """Distinct 64-bit hashes of the document's n-gram shingles."""
    t = normalize(text)
    if cjk is None:
        cjk = len(CJK_RE.findall(t[:1000])) > 0.3 * max(1, len(t[:1000]))
    if cjk:
        codes = codepoints(t.replace(" ", ""))
        m = len(codes)
        if m == 0:
            return np.zeros(0, dtype=np.uint64)
        if m < n:
            starts, ends = np.array([0]), np.array([m])
        else:
            starts, ends = np.arange(0, m - n + 1), np.arange(n, m + 1)
    else:
        spans = [(mt.start(), mt.end()) for mt in _WORD_RE.finditer(t)]
        if not spans:
            return np.zeros(0, dtype=np.uint64)
        codes = codepoints(t)
        s = np.array([a for a, _ in spans])
        e = np.array([b for _, b in spans])
        if len(spans) < n:
            starts, ends = s[:1], e[-1:]
        else:
            starts, ends = s[: len(spans) - n + 1], e[n - 1:]
    h = substring_hashes(codes, starts, ends)
    return np.unique(h)


_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijective, well-mixing map of 64-bit integers."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _C1
        x = (x ^ (x >> np.uint64(27))) * _C2
        return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class MinHasher:
    """``num_perm`` hash functions h_i(x) = mix64(x XOR s_i), with seeds s_i drawn from ``seed``.

    (A linear family (a·x + b) mod p over 32-bit shingles is *not* random enough here: its
    minimum is nearly always taken by the same small x, so unrelated documents look alike.)
    """

    num_perm: int = 112
    seed: int = 1

    def params(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.integers(0, np.iinfo(np.uint64).max, size=self.num_perm, dtype=np.uint64, endpoint=True)

    def signature(self, sh: np.ndarray, seeds: np.ndarray | None = None) -> np.ndarray:
        """The MinHash signature (``num_perm`` values) of a set of shingle hashes."""
        if seeds is None:
            seeds = self.params()
        sig = np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        for i in range(0, len(sh), 2048):
            v = mix64(seeds[:, None] ^ sh[None, i:i + 2048])
            np.minimum(sig, v.min(axis=1), out=sig)
        return sig


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band)."""
    n = sigs.shape[0]
    keys = np.zeros((n, bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            keys = keys * np.uint64(0x100000001B3) ^ sigs[:, r::rows][:, :bands]
    return keys + np.arange(bands, dtype=np.uint64)[None, :] * np.uint64(0x9E3779B97F4A7C15)


class UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, x: int) -> int:
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:  # path compression
            p[x], x = root, p[x]
        return root

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            if rx < ry:  # the smaller index (earlier document) stays the root
                self.parent[ry] = rx
            else:
                self.parent[rx] = ry

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))])


def lsh_clusters(sigs: np.ndarray, bands: int = 14, rows: int = 8) -> np.ndarray:
    """Cluster id (the index of the cluster's first document) for every document."""
    if sigs.shape[1] < bands * rows:
        raise InputError(f"signatures have {sigs.shape[1]} values; {bands} bands × {rows} rows need {bands * rows}",
                         zh=f"签名只有 {sigs.shape[1]} 个值，而 {bands} 个分带（bands）× 每带 {rows} 行（rows）需要 "
                            f"{bands * rows} 个：请减小 bands 或 rows")
    uf = UnionFind(len(sigs))
    keys = band_keys(sigs, bands, rows)
    for b in range(bands):
        k = keys[:, b]
        order = np.argsort(k, kind="stable")
        same = np.flatnonzero(k[order][1:] == k[order][:-1])
        for i in same:
            uf.union(int(order[i]), int(order[i + 1]))
    return uf.roots()


def true_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def estimated_jaccard(sa: np.ndarray, sb: np.ndarray) -> float:
    return float(np.mean(sa == sb))


@dataclass
class DedupResult:
    exact_key: np.ndarray  # uint64 per document
    cluster: np.ndarray  # near-duplicate cluster id per document
    signatures: np.ndarray  # (n, num_perm) uint64

    def clusters(self, min_size: int = 2) -> pd.Series:
        """Cluster sizes (clusters of at least ``min_size``), largest first."""
        s = pd.Series(self.cluster).value_counts()
        return s[s >= min_size]


def compute_dedup(texts: list[str], langs: list[str] | None = None, *, ngram: int = 5, bands: int = 14,
                  rows: int = 8, seed: int = 1, on_event: Callable[[Event], None] | None = None,
                  stop: StopFlag | None = None, show_progress: bool = True) -> DedupResult:
    em = Emitter("data", on_event)
    mh = MinHasher(bands * rows, seed)
    seeds = mh.params()
    keys = np.empty(len(texts), dtype=np.uint64)
    sigs = np.empty((len(texts), mh.num_perm), dtype=np.uint64)
    em.emit("start", step="minhash", total=len(texts))
    for i in progress(range(len(texts)), desc="minhash", emitter=em, stop=stop,
                      every=max(1, len(texts) // 100), show=show_progress):
        t = texts[i]
        keys[i] = exact_key(t)
        cjk = None if langs is None else langs[i] == "zh"
        sigs[i] = mh.signature(shingles(t, ngram, cjk), seeds)
    cluster = lsh_clusters(sigs, bands, rows)
    em.emit("done", step="minhash", total=len(texts))
    return DedupResult(keys, cluster, sigs)
