"""The training panel (puyu_lab/panels/pretrain.py) as a Trainer listener: it draws the engine's events, and
shows a training that raises."""
import pytest

from puyu_lab.pretrain.train import pretrain

from ..pretrain.helpers import tiny_cfg, ws  # noqa: F401 (ws: a fixture)

pytestmark = pytest.mark.slow


def test_training_panel_draws_from_engine_events(ws):
    from puyu_lab.panels.pretrain import TrainingPanel

    panel = TrainingPanel()
    logs = []

    def run(on_event, stop):
        def both(e):
            if e.kind == "log":
                logs.append(e.data)
            on_event(e)
        return pretrain(ws, tiny_cfg(max_steps=6), on_event=both, stop=stop)

    panel.start(run)
    result = panel.wait(timeout=300)
    assert result.steps == 6
    pts = panel.points
    assert pts["train"] == len([h for h in result.history if "loss" in h])
    assert pts["eval"] >= 1 and pts["lr"] == pts["train"]
    # the speed shown is the engine's last measured one, as the panel rounds it
    speed = [d["tokens_per_s"] for d in logs if d.get("tokens_per_s")][-1]
    assert f"<b>{speed:,.0f}</b> tokens/s" in panel.stats.value and speed > 0 and panel.progress.value == 6
    precision = ws.get("model/base").metrics["precision"]
    assert f"precision: {precision} (" in panel.stats.value  # the numeric path chosen here, and why
    # the generations shown are the engine's: the last sampled step's texts are the run's samples after training
    assert panel.samples and panel.samples[-1][1] == result.samples_after, (panel.samples[-1], result.samples_after)
    replay = TrainingPanel.replay(str(ws.get("model/base").path / "curve.json"))
    assert replay.points["train"] == pts["train"]


def test_training_that_raises_is_shown_in_the_panel_and_kept():
    from puyu_lab.panels.pretrain import TrainingPanel

    def broken(on_event, stop):
        raise RuntimeError("CUDA out of memory (scripted)")

    panel = TrainingPanel()
    panel.start(broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        panel.wait(timeout=10)
    assert isinstance(panel.error, RuntimeError)
    assert "RuntimeError: CUDA out of memory (scripted)" in panel.status.value
