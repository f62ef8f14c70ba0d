"""Training across processes: the same run on 1 or 2 workers (torchrun + the HF Trainer's DDP, gloo on this CPU).

The 2-process run goes through ``puyu-lab pretrain train --nproc 2``: real torchrun (torch.distributed.run), two real
processes, the config's batch the global batch (2 × 4 here). The refusals (what the processes could not share) are
checked without starting any."""
import json

import pytest

from puyu_lab.errors import InputError
from puyu_lab.pretrain.launch import check_parallel, check_worker
from puyu_lab.pretrain.train import pretrain

from .helpers import tiny_cfg

STEPS = 12
# fp32 on purpose (bf16=False): then the only difference between the runs is the order of floating-point sums —
# two processes each average the loss over 4 sequences and gloo averages the two gradients, where one process
# averages over 8 in one reduction. fp32 rounds at ~6e-8 relative per operation; over 12 steps the two curves
# were measured to agree within 1e-6 (9.5e-7: one rounding step of a loss near 8; the test leaves its gaps in
# test-artifacts/ddp-parity.json). The tolerance, 1e-4, leaves 100× that for another CPU's kernels and is still
# ~400× smaller than what a real mistake does: with each process training alone (no gradient all-reduce: an
# evaluate() before train() leaves the model unwrapped) the loss differed by 4e-2 at step 3.
# Under bf16 autocast each matmul rounds to 8 mantissa bits (~4e-3 relative) and the curves could only be held
# to ~1e-2 — too loose to tell a right run from a wrong one, hence fp32 here (make bench prints the bf16 gap).
TOL = 1e-4


def cfg(**kw):
    return tiny_cfg(**{**dict(batch_size=8, max_steps=STEPS, eval_every=STEPS // 2, save_every=STEPS, sample_every=0,
                              log_every=1), **kw})


def losses(history, key="loss"):
    return {h["step"]: h[key] for h in history if key in h}


@pytest.mark.slow
def test_two_processes_give_one_process_curve(layers, tmp_path, capfd, artifacts_dir):
    from puyu_lab.cli import main
    from puyu_lab.workspace import Workspace

    one = pretrain(layers.workspace("tokenizer", tmp_path / "one"), cfg())
    capfd.readouterr()

    two_ws = layers.workspace("tokenizer", tmp_path / "two")
    config = tmp_path / "pretrain.json"
    config.write_text(json.dumps(cfg().to_dict()), encoding="utf-8")
    assert main(["pretrain", "train", "--nproc", "2", "--config", str(config), "--home", str(two_ws.root)]) == 0
    out = capfd.readouterr().out
    assert "torchrun: 2 processes (gloo), global batch 8 = 2 × 4" in out
    assert out.count(f"finished at step {STEPS}/{STEPS}") == 1, "rank 0 alone reports"

    art = Workspace(two_ws.root).get("model/base")
    two = json.loads((art.path / "curve.json").read_text(encoding="utf-8"))
    gaps = {}
    for key in ("loss", "eval_loss"):
        a, b = losses(one.history, key), losses(two, key)
        assert sorted(a) == sorted(b) and len(a) >= (STEPS if key == "loss" else 3), (key, sorted(a), sorted(b))
        gaps[key] = max(abs(a[s] - b[s]) for s in a)
    (artifacts_dir / "ddp-parity.json").write_text(json.dumps({"steps": STEPS, "max_abs_gap": gaps, "tolerance": TOL,
                                                               "tokens_per_s": {"1": one.artifact.metrics["tokens_per_s"],
                                                                                "2": art.metrics["tokens_per_s"]}}))
    for key, gap in gaps.items():
        assert gap < TOL, f"{key}: 2 processes drift from 1 by {gap:.2e}"
    assert two[-1]["step"] == STEPS and one.history[-1]["step"] == STEPS

    # the artifact says how it was run; the processes shared the run through DDP
    m, p = art.metrics, art.params["parallel"]
    assert (m["nproc"], m["global_batch"]) == (2, 8) and (one.artifact.metrics["nproc"], one.artifact.metrics[
        "global_batch"]) == (1, 8)
    assert p == {"strategy": "ddp", "nproc": 2, "backend": "gloo", "global_batch": 8, "per_process_batch": 4,
                 "grad_accum": 1, "model_wrapper": "DistributedDataParallel"}
    assert m["tokens_per_s"] > 0 and m["steps"] == STEPS
    # only rank 0 wrote: one model version in the store (a second writer's would stay beside it), nothing half-made
    store = two_ws.root / ".store"
    assert len(list(store.glob("model__base.*"))) == 1, sorted(x.name for x in store.iterdir())
    assert not list(store.glob("*.partial"))
    assert sorted(x.name for x in (two_ws.root / "runs" / "pretrain").iterdir()) == [f"checkpoint-{STEPS}", "run.json"]


def test_what_the_processes_cannot_share_is_refused_before_they_start():
    with pytest.raises(InputError, match=r"batch_size 8 \(the global batch\) does not split evenly across --nproc 3"):
        check_parallel(cfg(), 3, cuda=False, devices=4)
    with pytest.raises(InputError, match=r"budget_s=70 with --nproc 2: .*--max-steps N \(or --budget 0"):
        check_parallel(cfg(budget_s=70.0), 2, cuda=False, devices=2)
    with pytest.raises(InputError, match=r"--nproc 4: this machine has 2 CPU cores.*use --nproc 2 or fewer"):
        check_parallel(cfg(), 4, cuda=False, devices=2)
    with pytest.raises(InputError, match=r"--nproc 0: the number of training processes is at least 1"):
        check_parallel(cfg(), 0, cuda=False)
    with pytest.raises(InputError, match=r"bf16=None with 2 processes: .*Set bf16 to true or false"):
        check_worker(cfg(bf16=None), 2, cuda=False)
    check_parallel(cfg(budget_s=70.0, batch_size=3), 1, cuda=False)  # one process: anything goes
    check_worker(cfg(), 2, cuda=False)
    try:  # each in both languages
        check_parallel(cfg(), 3, cuda=False, devices=4)
    except InputError as e:
        assert "全局批大小" in e.zh and "--nproc 3" in e.zh


def test_the_command_line_refuses_before_starting_torchrun(tmp_path, capsys):
    from puyu_lab.cli import main

    home = tmp_path / "ws"  # an empty workspace: each refusal comes before anything is read
    assert main(["pretrain", "train", "--nproc", "3", "--max-steps", "5", "--home", str(home)]) == 2
    assert "does not split evenly across --nproc 3" in capsys.readouterr().err
    assert main(["pretrain", "run", "--nproc", "2", "--profile", "quick", "--home", str(home)]) == 2
    assert "a time budget is planned from each process's own step times" in capsys.readouterr().err
    assert not home.exists()
