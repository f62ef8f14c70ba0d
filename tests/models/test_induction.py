"""The induction (prefix-matching) score per attention head, on a real tiny model."""
from __future__ import annotations

import numpy as np


def test_each_head_gets_a_prefix_matching_score_from_its_own_attention(model_dir):
    from puyu_lab.models import HFModel
    from puyu_lab.models.probes import induction_scores

    m = HFModel.load(model_dir)
    impl = m.model.config._attn_implementation
    r = induction_scores(m, n=4, length=12)
    assert m.model.config._attn_implementation == impl  # the model's own attention is restored
    cfg = m.model.config
    s = np.array(r["scores"])
    assert s.shape == (cfg.num_hidden_layers, cfg.num_attention_heads)
    assert ((s >= 0) & (s <= 1)).all()
    assert r["best"]["score"] == round(float(s.max()), 3) and s[r["best"]["layer"], r["best"]["head"]] == s.max()
    pat = np.array(r["pattern"])
    assert pat.shape == (2 * 12 + 1, 2 * 12 + 1)
    assert np.allclose(pat.sum(axis=1), 1, atol=0.01) and np.allclose(np.triu(pat, 1), 0)  # causal softmax rows
    # the score is the attention on the token after the earlier occurrence: recomputed from the pattern
    q = np.arange(13, 24)
    assert abs(pat[q, q - 12 + 1].mean() - s[r["best"]["layer"], r["best"]["head"]]) < 0.2
