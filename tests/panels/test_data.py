"""The cleaning panel (puyu_lab/panels/data.py) is a view: after a slider move its funnel shows the engine's
counts; it exports, shows an export that raises, and loads one's own data with the bad records skipped."""
import html
import time

import pytest

from puyu_lab.data.pipeline import prepare
from puyu_lab.data.sources import load_sources

from ..data.helpers import news, write_jsonl  # noqa: F401 (news: a fixture)


@pytest.fixture(scope="module")
def run():
    return prepare(raw=load_sources(limit_per_source=300, seed=3), show_progress=False)


def test_slider_moves_funnel_to_engine_counts(run):
    from puyu_lab.panels.data import DataCleaningPanel

    panel = DataCleaningPanel(run)
    before = [n for _, n in panel.funnel]
    assert before == run.verdict(panel.recipe).funnel.documents.tolist()

    panel.set_threshold("gopher_short_doc", 200, "zh")  # demand 200 characters of Chinese
    panel.flush()
    after = [n for _, n in panel.funnel]
    engine = run.verdict(panel.recipe).funnel.documents.tolist()
    assert after == engine
    assert after[-1] < before[-1], "a stricter rule keeps fewer documents"
    assert panel.recipe.threshold("gopher_short_doc", "zh") == 200
    assert panel.recipe is run.recipe, "the panel edits the engine's recipe, not a copy"

    panel.group_boxes["gopher_quality"].value = False  # switch a whole rule group off
    panel.flush()
    assert [n for _, n in panel.funnel] == run.verdict(panel.recipe).funnel.documents.tolist()
    assert "gopher_short_doc" not in set(panel.verdict.reason)

    # the browser echoing a value back with float rounding is not a slider move
    panel.lang.value = "en"
    panel.sliders["dup_para_frac"].value = 0.30000000000000004
    assert panel.recipe.threshold("dup_para_frac", "en") == 0.3
    for name, s in panel.sliders.items():  # every default threshold sits on its slider's step grid
        v = panel.recipe.threshold(name, "en")
        if v is not None and not s.disabled:
            assert abs(round(v / s.step) * s.step - v) < 1e-9, name

    panel.set_threshold("top_2_gram", None, "en")  # a rule's checkbox off
    assert panel.recipe.threshold("top_2_gram", "en") is None


def test_panel_views_and_export(run, ws):
    from puyu_lab.panels.data import DataCleaningPanel

    panel = DataCleaningPanel(run, ws)
    panel.flush()
    assert panel.reason_pick.options, "dropped reasons are listed"
    panel.reason_pick.value = panel.reason_pick.options[0][1]
    assert "<pre" in panel.samples.value
    # the clusters tab shows the engine's near-duplicate pairs (these sources hold some), one row each
    pairs = run.near_duplicate_pairs(k=5)
    assert pairs, "the sampled sources hold near-duplicate clusters"
    view = panel.clusters.value
    assert view.count("<tr>") == len(pairs), f"one row per engine pair ({len(pairs)}), the view shows: {view[:120]}"
    for p in pairs:
        assert f"#{p['cluster']} ({p['size']})" in view
        assert f"{p['estimated_jaccard']:.2f}" in view and f"{p['true_jaccard']:.2f}" in view
        assert html.escape(p["text_a"][:300]) in view and html.escape(p["text_b"][:300]) in view
    assert "no near-duplicate" not in view
    hist_total = len(panel.fig.data[1].x) + len(panel.fig.data[2].x)
    assert hist_total == int((run.signals.rule_lang == panel.lang.value).sum())
    panel.export_btn.click()
    deadline = time.time() + 60
    while not ws.exists("corpus/clean") and time.time() < deadline:
        time.sleep(0.2)
    while panel.export_btn.disabled and time.time() < deadline:
        time.sleep(0.1)
    art = ws.get("corpus/clean")
    assert art.metrics["documents"] == panel.verdict.n_kept
    assert "corpus/clean" in panel.export_status.value


def test_an_export_that_raises_is_shown_in_the_panel_and_kept(run, ws, monkeypatch):
    from puyu_lab.panels.data import DataCleaningPanel

    panel = DataCleaningPanel(run, ws)

    def broken(*a, **kw):
        raise OSError("No space left on device")

    monkeypatch.setattr(run, "export", broken)
    panel.export_btn.click()
    panel.export_thread.join(10)
    assert isinstance(panel.error, OSError) and not panel.export_btn.disabled
    assert "OSError: No space left on device" in panel.export_status.value


def test_panel_loads_with_skip_bad_and_shows_the_count(news, tmp_path):
    from puyu_lab.panels.data import DataCleaningPanel

    src = write_jsonl(tmp_path / "mine.jsonl", news[:3], bad_line=True)
    panel = DataCleaningPanel.from_sources([str(src)], skip_bad=True, show_progress=False)
    panel.flush()
    assert len(panel.run.skipped) == 1 and "1 bad record(s) skipped" in panel.status.value


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_control_of_the_panel_is_labelled_in_the_course_language(run, language):
    """The language-ID slider, the C4 flags, the rule groups and the dedup switches: each label comes from the zh/en
    table in the current language (no English label left for a learner reading Chinese)."""
    import ipywidgets as W

    from puyu_lab.i18n import STRINGS, get_language, set_language
    from puyu_lab.panels.data import DataCleaningPanel

    before = get_language()
    set_language(language)
    try:
        panel = DataCleaningPanel(run)
    finally:
        set_language(before)
    pick = 1 if language == "zh" else 0
    assert panel.lang_score.description == STRINGS["min_lang_score"][pick]
    boxes = {}
    stack = [panel.ui]
    while stack:  # every checkbox the panel draws, by its label
        w = stack.pop()
        stack += list(getattr(w, "children", ()))
        if isinstance(w, W.Checkbox) and w.description:
            boxes[w.description] = w
    for key in ("c4_lorem_ipsum", "c4_curly_bracket", "language", "c4", "pii_scrub", "exact_dedup", "near_dedup"):
        assert STRINGS[key][pick] in boxes, (key, sorted(boxes))
    if language == "zh":
        labels = list(boxes) + [panel.lang_score.description]
        assert not [s for s in labels if s.isascii()], labels  # every label has Chinese in it
        assert "min score" not in labels and "{ curly bracket" not in labels
    panel.lang_score.value = 0.5  # the renamed slider still drives the recipe
    assert panel.recipe.min_lang_score == 0.5
