"""The course build, a few steps a phase, through the same code path as the real build."""
from __future__ import annotations

import json
from dataclasses import replace

from datasets import load_from_disk

from puyu_lab.course.build import build, phase_names, read_curve
from puyu_lab.course.config import CourseConfig
from puyu_lab.course.copyrich import KINDS, copy_rich_documents
from puyu_lab.pretrain.model import ModelPreset

from ..conftest import TINY_PRESET


def test_copy_rich_documents_repeat_what_they_show():
    docs = copy_rich_documents(["今天天气很好，我们去公园散步吧。明天可能会下雨，所以要带伞，别忘了。"] * 2,
                               ["▁the", "中国", "ing", "▁of", "12"], 300, seed=3)
    kinds = {d["kind"] for d in docs}
    assert kinds == set(KINDS)
    for d in docs:
        t = d["text"]
        if d["kind"] == "digits":  # the same digit string twice
            import re

            runs = re.findall(r"\d{3,}", t)
            assert len(runs) == 2 and runs[0] == runs[1], t
        if d["kind"] == "calculator":  # the call copies the question's expression; the answer the result
            q, call, res, ans = t.split("\n")
            e = json.loads(call)["parameters"]["expression"]
            r = json.loads(res)["result"]
            assert e in q and str(r) in ans, t


def test_a_few_steps_a_phase_build_every_artifact_and_resume_where_they_stopped(layers, tmp_path):
    ws = layers.workspace("tokenizer", tmp_path / "ws")  # corpus/clean and tokenizer/spm: those steps are skipped
    cfg = CourseConfig(preset=ModelPreset(**TINY_PRESET))
    cfg = cfg.scaled(4)
    cfg = replace(cfg, phases=tuple(replace(p, block_size=64, batch_size=2) for p in cfg.phases))
    build(ws.root, cfg, until="a")
    corpus_a, model_a, run_a = phase_names(cfg.phases[0])
    assert ws.exists(corpus_a) and ws.exists(model_a) and not ws.exists("model/course-b")
    m = ws.get(corpus_a).metrics
    assert m["copy_rich_tokens"] >= cfg.phases[0].tokens * cfg.phases[0].copy_share and m["copy_rich_documents"] > 0
    curve = read_curve(ws.root / "runs" / f"{run_a}.probe.jsonl")
    assert [c["step"] for c in curve] == [2, 4] and all("gain" in c and "copied" in c for c in curve)
    phase = json.loads((ws.get(model_a).path / "course_phase.json").read_text())
    assert phase["tokens_seen"] == 4 * 2 * 64 and phase["machine"]["cores"] >= 1
    assert phase["predicted_induction_tokens"] == round(10 ** 5.7 * (2 * 64) ** 0.5)
    first_a = ws.get(model_a).id

    build(ws.root, cfg)  # goes on from the copy phases: phase a is not trained again
    assert ws.get(model_a).id == first_a
    corpus_c, model_c, _ = phase_names(cfg.phases[1])
    m = ws.get(corpus_c).metrics  # the first copy phase: random runs only, over the first 256 ordinary pieces
    assert m["natural_repeats"] == 0 and m["train_documents"] == m["copy_rich_documents"]
    assert set(m["copy_rich_kinds"]) == {"runs"}
    from puyu_lab.models.tokenizer import load_tokenizer

    tok = load_tokenizer(ws.get("tokenizer/spm").path)
    margin = min(300, len(tok) // 10)
    allowed = set(range(margin, margin + 256)) | {tok.eos_token_id, tok.bos_token_id}
    texts = load_from_disk(str(ws.get(corpus_c).path / "dataset"))["train"]["text"][:50]
    runs = [t.split("\n")[0].split(" | ")[0] for t in texts]
    inside = sum(i in allowed for r in runs for i in tok(r, add_special_tokens=False)["input_ids"])
    assert inside >= 0.8 * sum(len(tok(r, add_special_tokens=False)["input_ids"]) for r in runs)  # re-tokenizing merges a few
    assert [p["name"] for p in ws.get(model_c).manifest["parents"]][-1] == model_a  # from phase a's weights
    # its probe curve holds the probe over its own pieces too, the measure its target applies to
    curve_c = read_curve(ws.root / "runs" / f"{phase_names(cfg.phases[1])[2]}.probe.jsonl")
    assert curve_c and all(c["pieces"] == 256 and "pieces_gain" in c and "pieces_copied" in c for c in curve_c)
    b = ws.get("model/course-b")
    prev = phase_names(cfg.phases[-2])[1]
    assert [p["name"] for p in b.manifest["parents"]][-1] == prev  # phase b from the last copy phase's weights
    assert ws.exists("model/sft") and ws.get("model/sft").manifest["params"]["config"]["base"] == "model/course-b"
    assert ws.get("sft/data").metrics["train_custom"] > 0  # the reading-comprehension conversations


def test_a_phase_given_more_steps_continues_from_its_checkpoint_and_later_phases_are_redone(layers, tmp_path):
    ws = layers.workspace("tokenizer", tmp_path / "ws")
    cfg = CourseConfig(preset=ModelPreset(**TINY_PRESET)).scaled(4)
    cfg = replace(cfg, phases=tuple(replace(p, block_size=64, batch_size=2) for p in cfg.phases))
    build(ws.root, cfg, until="b")
    b_first = ws.get("model/course-b").id
    longer = replace(cfg, phases=(replace(cfg.phases[0], max_steps=6), *cfg.phases[1:]))  # copying had not formed
    build(ws.root, longer, until="b")
    a = ws.get("model/course-a")
    assert a.metrics["steps"] == 6  # resumed at step 4, not started again
    curve = read_curve(ws.root / "runs" / "course-a.probe.jsonl")
    assert [c["step"] for c in curve] == [2, 4, 6]
    assert ws.get("model/course-b").id != b_first and not ws.is_stale(ws.get("model/course-b"))


def test_ship_writes_what_verify_and_the_model_layer_read_and_a_changed_byte_is_found(layers, tmp_path):
    from puyu_lab.course.ship import ship
    from puyu_lab.models import course

    ws = layers.workspace("tokenizer", tmp_path / "ws")
    cfg = CourseConfig(preset=ModelPreset(**TINY_PRESET)).scaled(2)
    cfg = replace(cfg, phases=tuple(replace(p, block_size=64, batch_size=2) for p in cfg.phases))
    build(ws.root, cfg)
    root = ship(ws, tmp_path / "course_model")
    assert course.verify(root) == []
    m = course.shipped_manifest(root)
    phases = m["build"]["phases"]
    assert [p["phase"] for p in phases] == [p.name for p in cfg.phases]
    b = phases[-1]
    assert b["probe_curve"][0]["tokens_total"] == sum(p["tokens_seen"] for p in phases[:-1]) + b["probe_curve"][0]["tokens"]
    base = course.load("base", root)
    assert base.model.dtype.is_floating_point and base.vocab_size() == TINY_PRESET["vocab_size"]
    assert all(t["question"] for t in course.heldout_tasks("arithmetic", root=root))
    w = root / course.FOLDERS["base"] / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    assert course.verify(root) == [f"{course.FOLDERS['base']}/model.safetensors: sha256 differs from the manifest's"]


def test_the_stages_know_every_phase_the_build_makes():
    from puyu_lab.stages import COURSE_PHASES

    assert tuple(p.name for p in CourseConfig().phases) == COURSE_PHASES
