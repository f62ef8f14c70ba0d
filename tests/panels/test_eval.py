"""The eval panel (puyu_lab/panels/eval.py): the leaderboard, its charts and the samples where models disagree."""
import pytest

from puyu_lab.eval.runner import evaluate
from puyu_lab.eval.tasks import Task, load_task_file
from puyu_lab.models import HFModel

from ..eval.helpers import MAX_LEN, setup  # noqa: F401 (setup: a fixture)

pytestmark = pytest.mark.slow


def test_eval_panel_leaderboard_charts_and_disagreements(setup):
    from puyu_lab.panels.eval import EvalPanel

    ws, model_dir, data = setup
    choice = load_task_file(data / "choice.jsonl", "choice")
    gen = Task("gen", "generation", [{"prompt": "中国", "answer": "的"}, {"prompt": "今天", "answer": "天"}],
               chat=False, max_new_tokens=4)
    a = HFModel.load(model_dir, "a", max_length=MAX_LEN, batch_size=4)
    b = HFModel.load(model_dir, "b", max_length=MAX_LEN, batch_size=4)
    run = evaluate({"a": a, "b": b}, [choice, gen], progress_bar=False)
    run.samples["b"]["choice"][0] = dict(run.samples["b"]["choice"][0], answer="(changed)")  # one disagreement
    panel = EvalPanel(run)
    board = panel.leaderboard()
    assert [r["dataset"] for r in board] == ["choice", "choice", "gen"] and board[0]["a"] == run.metrics["a"]["choice"]["acc"]
    assert "acc_norm" in panel.leader.value
    assert len(panel.bars.data) == 2 and list(panel.bars.data[0].x) == ["choice", "gen"]
    assert len(panel.radar.data) == 2
    assert len(panel.samples()) == len(choice.docs)
    panel.only_diff.value = True
    rows = panel.samples()
    assert [r["#"] for r in rows] == [0] and "(changed)" in rows[0]["b"]
    assert "(changed)" in panel.browser.value
