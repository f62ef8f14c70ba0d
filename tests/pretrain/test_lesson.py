"""The in-context-learning lesson: the tiny model's second-showing loss falls off its cliff, an induction head
forms (the model layer's prefix-matching score), the panel draws the run, Stop ends it, bad settings are named."""
from __future__ import annotations

import pytest

from puyu_lab.errors import InputError
from puyu_lab.events import StopFlag
from puyu_lab.pretrain.lesson import LessonConfig, _batch, run


def test_the_runs_are_shown_twice_at_varying_distances():
    import torch

    cfg = LessonConfig(run_min=4, run_max=8)
    x = _batch(cfg, 200, torch.Generator().manual_seed(0))
    assert x.shape == (200, 17)
    ks = set()
    for row in x.tolist():  # the longest k whose two showings end the sequence
        k = max(k for k in range(4, 9) if row[17 - 2 * k:17 - k] == row[17 - k:])
        ks.add(k)
    assert len(ks) >= 3, "the copy distance varies, so position alone cannot predict the second showing"
    fixed = _batch(cfg, 3, torch.Generator().manual_seed(0), fixed=True)
    assert all(r[1:9] == r[9:] for r in fixed.tolist())


@pytest.mark.parametrize("bad", [{"run_min": 1}, {"run_min": 9, "run_max": 8}, {"vocab_size": 8}])
def test_bad_settings_are_named(bad):
    with pytest.raises(InputError, match="LessonConfig"):
        LessonConfig(**bad)


def test_stop_ends_the_run_and_it_says_so():
    stop = StopFlag()

    def listen(e):
        if e.kind == "lesson" and e.data["step"] >= 20:
            stop.set()

    res = run(LessonConfig(probe_every=10, max_steps=500), on_event=listen, stop=stop)
    assert res.stopped and 20 <= res.steps < 40 and res.curve[-1]["step"] == res.steps


@pytest.mark.slow
def test_the_cliff_comes_and_an_induction_head_forms():
    from puyu_lab.panels.induction import LessonPanel

    panel = LessonPanel()
    res = panel.start(lambda on_event, stop: run(LessonConfig(max_steps=2000, probe_every=100),
                                                 on_event=on_event, stop=stop)).wait(timeout=600)
    first, last = res.curve[0], res.curve[-1]
    assert first["second_nll"] == pytest.approx(5.55, abs=0.1)  # untrained: uniform over 256 tokens
    assert res.cliff_step is not None and res.cliff_step < 2000, res.curve
    assert last["second_nll"] < 0.5 * last["first_nll"] and last["first_nll"] > 5.4, last  # copies; cannot guess
    assert res.induction["best"]["score"] > 0.3, res.induction["best"]  # a head attends where an induction head does
    assert len(panel.fig.data[1].y) == len(res.curve) and "<b>" in panel.status.value
