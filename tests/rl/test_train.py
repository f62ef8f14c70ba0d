"""The RL stage end to end at test size: 2 GRPO steps of trl on the tiny chain's model/sft through ``run`` (the same
code path as the CLI and the lab), the artifact's manifest holding trl's per-step reward / KL figures, and those
figures recomputed from the saved completions."""
import json

import pytest

from puyu_lab.rl.config import RLConfig, TaskMix

SMALL = TaskMix(arithmetic=4, date=2, notool=4)


def small_cfg(**kw) -> RLConfig:
    return RLConfig(**{**dict(num_generations=4, prompts_per_step=2, max_steps=2, max_completion_tokens=16,
                              tasks=SMALL, progress_bar=False, bf16=False), **kw})


@pytest.mark.slow
def test_two_grpo_steps_write_the_figures(layers, tmp_path):
    from puyu_lab.rl import run
    from puyu_lab.rl.figures import agree

    ws = layers.workspace("sft", tmp_path / "ws")
    events = []
    res = run(ws, small_cfg(), on_event=events.append)
    assert res.steps == 2 and not res.stopped
    art = ws.get("model/rl")
    m = art.manifest["metrics"]
    assert m["reward"] == "checked" and m["steps"] == 2 and m["machine"]["cores"] >= 1 and m["seconds"] > 0
    steps = m["per_step"]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        for k in ("reward", "reward_std", "frac_reward_zero_std", "kl", "mean_length", "rewards/answer_correct/mean"):
            assert isinstance(r[k], float), (k, r)
        assert r["mean_length"] <= 16
    assert art.manifest["params"]["config"]["num_generations"] == 4
    samples = [json.loads(x) for x in (art.path / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 2 * 2 * 4  # steps × groups × group size
    assert {s["group"] for s in samples} == {0, 1}
    assert set(samples[0]["rewards"]) == {"answer_correct", "call_valid", "no_needless_call", "format_penalty"}
    assert agree(m, samples) == [], "trl's logged reward / reward_std are the saved completions' own"
    assert (art.path / "curve.json").is_file() and (art.path / "model.safetensors").is_file()
    kinds = [e.kind for e in events]
    assert "numerics" in kinds and kinds.count("rl") == 2 and kinds[-1] == "done"
    rl = next(e for e in events if e.kind == "rl")
    assert rl.data["groups"] and len(rl.data["groups"][0]["samples"]) == 4 and rl.data["group_std"] >= 0
    # the naive reward writes beside it, and pays only calls
    naive = run(ws, small_cfg(reward="naive", beta=0.0))
    assert naive.artifact.name == "model/rl-naive"
    assert all(set(s["rewards"]) == {"made_call"} for s in naive.samples)
    assert naive.metrics["kl_max"] is None  # beta 0: no reference model, no KL figure
