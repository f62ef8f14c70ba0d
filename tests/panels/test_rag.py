"""The RAG panel (puyu_lab/panels/rag.py) on the chain's own workspace: the refusal slider shows the engine's
figures."""
import numpy as np
import pytest

from puyu_lab.rag.evaluate import refusal_at

from ..rag.helpers import rag_ws  # noqa: F401 (a fixture)


@pytest.mark.slow
def test_panel_slider_shows_the_engines_refusal_figures(rag_ws):
    from puyu_lab.artifacts import load_rag_eval
    from puyu_lab.panels import RAGPanel

    ev = load_rag_eval(rag_ws)
    panel = RAGPanel.from_workspace(rag_ws)
    test = [r for r in ev["rows"] if r["split"] == "test"]
    scores, labels = [r["relevance"] for r in test], [r["answerable"] for r in test]
    # the figure's curve is the engine's
    assert list(panel.pr.data[0].x) == [c["threshold"] for c in ev["curve"]]
    assert list(panel.pr.data[0].y) == [c["precision"] for c in ev["curve"]]
    assert list(panel.pr.data[1].y) == [c["recall"] for c in ev["curve"]]
    # the slider at the chosen threshold shows rag/eval's precision and recall
    assert panel.slider.value == pytest.approx(ev["metrics"]["threshold"])
    assert panel.stats()["precision"] == pytest.approx(ev["metrics"]["refusal_precision"], abs=1e-4)
    assert panel.stats()["recall"] == pytest.approx(ev["metrics"]["refusal_recall"], abs=1e-4)
    seen = set()
    for v in np.linspace(panel.slider.min, panel.slider.max, 25):
        panel.slider.value = float(v)
        want = refusal_at(scores, labels, panel.slider.value)
        assert panel.stats() == want
        assert f"data-answered='{want['answered']}'" in panel.counts.value
        assert f"data-refused='{want['refused']}'" in panel.counts.value
        assert panel.pr.layout.shapes[0].x0 == panel.slider.value
        seen.add(want["answered"])
    assert len(seen) > 3  # the slider really moves the counts
