import numpy as np
import pytest

from puyu_lab.data import pii
from puyu_lab.data.dedup import (MinHasher, band_keys, compute_dedup, estimated_jaccard, exact_key, lsh_clusters,
                                 shingles, true_jaccard)


def _pair(rng, m: int, jaccard: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Two sets of m shingle hashes with Jaccard as close to ``jaccard`` as integers allow."""
    k = round(2 * m * jaccard / (1 + jaccard))
    pool = rng.choice(np.iinfo(np.int64).max, size=2 * m - k, replace=False).astype(np.uint64)
    a = pool[:m]
    b = np.concatenate([pool[:k], pool[m:]])
    return np.unique(a), np.unique(b), k / (2 * m - k)


def _candidates(sa, sb, bands=14, rows=8) -> bool:
    keys = band_keys(np.stack([sa, sb]), bands, rows)
    return bool((keys[0] == keys[1]).any())


@pytest.mark.parametrize("jaccard, lo, hi", [(0.9, 0.98, 1.0), (0.3, 0.0, 0.02)])
def test_lsh_s_curve(jaccard, lo, hi):
    """14 bands × 8 rows: P(candidate) = 1 − (1 − J⁸)¹⁴ ≈ 0.9996 at J = 0.9, ≈ 0.0009 at J = 0.3."""
    rng = np.random.default_rng(0)
    trials, caught, err = 300, 0, []
    for t in range(trials):
        a, b, j = _pair(rng, 300, jaccard)
        mh = MinHasher(112, seed=t)  # a fresh family each trial
        sa, sb = mh.signature(a), mh.signature(b)
        caught += _candidates(sa, sb)
        err.append(estimated_jaccard(sa, sb) - j)
    rate = caught / trials
    assert lo <= rate <= hi, f"J={jaccard}: caught {rate:.3f}"
    assert abs(np.mean(err)) < 0.02, "MinHash estimates are unbiased"


def test_near_duplicates_cluster_on_real_text():
    base = ("据新华社北京１月５日电，国务院总理今天在人民大会堂会见了来访的外国客人，双方就进一步发展两国关系、"
            "加强经贸合作以及共同关心的国际和地区问题交换了意见。会见时，双方回顾了两国建交以来的友好交往。")
    near = base.replace("今天", "昨天").replace("。会见时", "。会见中")
    other = "今天的天气非常好，我们一家人去公园散步，孩子们在草地上放风筝，玩得很开心，直到傍晚才回家。"
    en = ("The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden fence near the "
          "barn. Later that evening the farmer walks back to the house, feeds the chickens, closes the gate and sits "
          "down by the fire to read the newspaper that arrived in the morning post from the town across the river.")
    en_near = en.replace("newspaper", "paper")
    texts = [base, near, other, en, en_near]
    d = compute_dedup(texts, ["zh", "zh", "zh", "en", "en"], show_progress=False)
    assert d.cluster[0] == d.cluster[1] != d.cluster[2]
    assert d.cluster[3] == d.cluster[4] != d.cluster[0]
    assert true_jaccard(shingles(base), shingles(near)) > 0.7
    assert true_jaccard(shingles(base), shingles(other)) < 0.05


def test_exact_key_normalizes_case_and_space():
    assert exact_key("Hello  World\n") == exact_key("hello world")
    assert exact_key("hello world") != exact_key("hello world!")


def test_lsh_clusters_are_transitive_and_rooted_at_first():
    mh = MinHasher()
    base = np.arange(1, 400, dtype=np.uint64) * np.uint64(7919)
    sigs = np.stack([mh.signature(base), mh.signature(np.arange(10_000, 10_400, dtype=np.uint64)),
                     mh.signature(base[:398])])
    assert list(lsh_clusters(sigs)) == [0, 1, 0]


@pytest.mark.parametrize("text, kind, placeholder", [
    ("写信给 zhang.san@example.com 吧", "email", "<EMAIL>"),
    ("contact: first.last+tag@mail.example.org.", "email", "<EMAIL>"),
    ("服务器地址 192.168.1.10 已上线", "ip", "<IP_ADDRESS>"),
    ("fe80 full: 2001:0db8:85a3:0000:0000:8a2e:0370:7334 ok", "ip", "<IP_ADDRESS>"),
    ("电话13812345678找我", "phone", "<PHONE>"),
    ("手机 +86 139-1234-5678 联系", "phone", "<PHONE>"),
    ("身份证号11010519491231002X已登记", "id_number", "<ID_NUMBER>"),
])
def test_pii_found_and_replaced(text, kind, placeholder):
    out, counts = pii.scrub(text)
    assert counts[kind] == 1 and placeholder in out
    assert pii.count(text)[f"pii_{kind}"] == 1


@pytest.mark.parametrize("text", [
    "订单号 123456789012345 已发货",  # 15 digits: neither phone nor ID
    "身份证号110105194912310021有误",  # wrong check digit
    "号码 12812345678 不是手机号",  # 12x is not a mobile prefix
    "the value 256.1.1.1 is not an address",
    "版本 1998年1月1日，共 13 人",
    "an email-like a@b without a domain",
])
def test_pii_negatives(text):
    out, counts = pii.scrub(text)
    assert out == text and sum(counts.values()) == 0
