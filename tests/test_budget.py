"""Time-budgeted training: a budget's run ends inside it with its learning-rate schedule complete, on
whatever machine runs the test; the schedule is transformers' own cosine; the plan reaches the manifest."""
from __future__ import annotations

import time

import pytest

from puyu_lab.budget import cosine_with_warmup

pytestmark = pytest.mark.slow


def test_the_schedule_is_transformers_cosine_with_warmup():
    import torch
    from transformers import get_cosine_schedule_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    for total, warm in ((50, 5), (7, 0), (412, 31)):
        sched = get_cosine_schedule_with_warmup(opt, warm, total)
        ref = [sched.lr_lambdas[0](s) for s in range(total + 1)]
        assert [cosine_with_warmup(s, total, warm) for s in range(total + 1)] == pytest.approx(ref, abs=1e-12)
    assert cosine_with_warmup(412, 412, 31) == 0.0  # the final value, at the planned last step


class Last:
    """Records what the Trainer's scheduler and state hold when training ends."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Last(TrainerCallback):
            def on_train_end(self, args, state, control, lr_scheduler=None, **kw):
                self.lrs = lr_scheduler.get_last_lr()
                self.step, self.max_steps = state.global_step, state.max_steps

        return _Last()


def test_a_20_second_budget_ends_within_it_and_completes_the_schedule(layers, tmp_path):
    from puyu_lab.pretrain.model import ModelPreset
    from puyu_lab.pretrain.train import CEILING, PretrainConfig, pretrain

    ws = layers.workspace("tokenizer", tmp_path / "ws")
    tiny = ModelPreset(hidden_size=256, num_layers=1, num_heads=4, num_kv_heads=2, intermediate_size=256,
                       vocab_size=3072, block_size=64)
    # the recipe (20 steps, its warmup share 10 %, 4 evaluations, 2 samples, 2 checkpoints) is the run's shape and floor
    cfg = PretrainConfig(preset=tiny, batch_size=4, max_steps=20, warmup_steps=2, eval_every=5, save_every=10,
                         sample_every=10, sample_tokens=8, eval_blocks=8, log_every=5, progress_bar=False,
                         bf16=False, budget_s=20)
    from puyu_lab.panels.pretrain import TrainingPanel

    last, plans, panel = Last(), [], TrainingPanel()

    def listen(e):
        panel(e)
        if e.kind == "budget":
            plans.append(e.data)

    t0 = time.perf_counter()
    res = pretrain(ws, cfg, extra_callbacks=[last], on_event=listen)
    wall = time.perf_counter() - t0
    b = ws.get("model/base").metrics["budget"]
    # the training loop (evaluations, samples and checkpoints included) ends within the budget plus one step
    assert b["train_seconds"] <= 20 + b["step_s"], b
    # it bought what fitted: the budget used, or (on a machine fast enough) the ceiling of CEILING × the recipe reached
    assert b["train_seconds"] >= 20 * 0.8 or b["total_steps"] == 20 * CEILING, f"the budget was under-used: {b}"
    # the schedule completed: the run stopped at its planned last step, with the rate at its final value (0)
    assert not b["cut_short"] and not b["over_budget"], b
    assert res.steps == b["total_steps"] == b["steps"] == last.step == last.max_steps, b
    assert max(last.lrs) == pytest.approx(0.0, abs=1e-12), last.lrs
    assert res.steps > 10 * 4, "it bought more steps than the measuring phase"
    assert b["warmup_steps"] == round(0.1 * b["total_steps"])
    # the recipe's numbers of evaluations and samples, spread over the steps bought
    evals = [h["step"] for h in res.history if "eval_loss" in h and h["step"] > 0]
    assert len(evals) == 4 and evals[-1] == res.steps, evals
    assert len([e for e in plans if e["step_s"]]) >= 2, "the plan is re-made as the run measures itself"
    assert b["machine"]["cores"] >= 1 and b["machine"]["capability"]
    panel.flush()  # the panel shows the budget and what it bought: "budget 0:20 — N steps on this machine"
    assert "budget <b>0:20</b> — <b>" in panel.stats.value, panel.stats.value
    assert f"<b>{plans[-1]['total_steps']}</b>" in panel.stats.value and panel.max_steps == plans[-1]["total_steps"]
    m = ws.get("model/base").metrics
    assert 0 < m["mfu"] < 1.5 and m["model_gflops"] == pytest.approx(
        m["tokens_per_s"] * m["train_flops_per_token"] / 1e9, rel=0.01)
    assert wall < 20 + 60  # the stage around it: data, the probes, saving


def test_a_budgeted_sft_and_dpo_end_within_their_budgets(layers, tmp_path):
    from puyu_lab.finetune.data import SFTDataSettings
    from puyu_lab.finetune.train import SFTConfig, finetune
    from puyu_lab.preference.config import PairSettings, PrefConfig
    from puyu_lab.preference.train import train

    ws = layers.workspace("base", tmp_path / "ws")
    data = SFTDataSettings(dialogs_zh=30, dialogs_en=10, sentiment_max=40, tool_examples=20, tool_heldout=5,
                           self_repeat=1)
    # small recipes (their floors): 8 SFT steps, 4 DPO steps; the budgets buy what fits beyond them
    sft = finetune(ws, SFTConfig(batch_size=4, max_length=160, sample_every=4, save_every=4, max_steps=8,
                                 progress_bar=False, data=data, bf16=False, budget_s=10), score=False)
    b = sft.metrics["budget"]
    assert b["train_seconds"] <= 10 + b["step_s"] and not b["cut_short"] and sft.steps == b["total_steps"], b
    dpo = train(ws, PrefConfig(batch_size=4, max_length=160, eval_every=4, max_steps=4, progress_bar=False, bf16=False,
                               budget_s=8, pairs=PairSettings(sentiment=24, tool=16, notool=8, heldout_sentiment=8,
                                                              heldout_tool=8)))
    b = dpo.metrics["budget"]
    assert b["train_seconds"] <= 8 + b["step_s"] and not b["cut_short"] and dpo.steps == b["total_steps"], b


def test_a_budget_never_buys_fewer_steps_than_its_floor(layers, tmp_path, monkeypatch):
    """The checks' floors were measured on ``min_steps`` steps: a CPU too slow for them inside the budget takes
    longer, and says so. ``$PUYU_LAB_BUDGET_SCALE=0`` gives every stage only its floor (the slowest machine)."""
    from puyu_lab.pretrain.model import ModelPreset
    from puyu_lab.pretrain.train import PretrainConfig, pretrain

    ws = layers.workspace("tokenizer", tmp_path / "ws")
    tiny = ModelPreset(hidden_size=256, num_layers=1, num_heads=4, num_kv_heads=2, intermediate_size=256,
                       vocab_size=3072, block_size=64)
    last = Last()
    monkeypatch.setenv("PUYU_LAB_BUDGET_SCALE", "0")
    res = pretrain(ws, PretrainConfig(preset=tiny, batch_size=4, max_steps=12, min_steps=7, warmup_steps=2,
                                      eval_every=6, save_every=12, sample_every=0, eval_blocks=4, progress_bar=False,
                                      bf16=False, budget_s=60), extra_callbacks=[last])
    b = ws.get("model/base").metrics["budget"]
    assert res.steps == 7 == b["min_steps"] == b["total_steps"] and b["over_budget"] and not b["cut_short"], b
    assert b["budget_s"] == 0.0  # the scaled budget is the one recorded
    assert max(last.lrs) == pytest.approx(0.0, abs=1e-12)  # the schedule still ends at the last step


def test_the_budget_scale_is_read_and_refused_clearly(monkeypatch):
    from puyu_lab.budget import budget_scale, floor_steps
    from puyu_lab.errors import InputError

    monkeypatch.delenv("PUYU_LAB_BUDGET_SCALE", raising=False)
    assert budget_scale() == 1.0
    monkeypatch.setenv("PUYU_LAB_BUDGET_SCALE", "2.5")
    assert budget_scale() == 2.5
    for bad in ("-1", "fast", "nan", "inf"):
        monkeypatch.setenv("PUYU_LAB_BUDGET_SCALE", bad)
        with pytest.raises(InputError, match="PUYU_LAB_BUDGET_SCALE.*number ≥ 0"):
            budget_scale()
    assert floor_steps(None, 400) == 400 and floor_steps(150, 400) == 150 and floor_steps(900, 400) == 400


def test_train_timed_starts_the_budget_clock_just_before_training():
    """The three training stages run their Trainer through budget.train_timed: the budget's clock starts, then the
    loop (resumed where asked), and the loop's own seconds come back."""
    from puyu_lab.budget import train_timed

    calls = []

    class Budget:
        def start(self):
            calls.append("start")

    class Trainer:
        def train(self, resume_from_checkpoint=None):
            calls.append(("train", resume_from_checkpoint))
            time.sleep(0.05)

    assert 0.05 <= train_timed(Trainer(), Budget(), resume_from="runs/x/checkpoint-6") < 5
    assert calls == ["start", ("train", "runs/x/checkpoint-6")]
    calls.clear()
    assert train_timed(Trainer()) >= 0.05 and calls == [("train", None)]  # a fixed-step run: no budget
