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
                               ["▁the", "中国", "ing", "▁of", "12"], 300, seed=3, ids=(300, 3700))
    kinds = {d["kind"] for d in docs}
    assert kinds == set(KINDS)
    for d in docs:
        t = d["text"]
        if d["kind"] == "token_runs":  # ids, not text: one run of ids in range shown two or three times
            ids = d["ids"]
            assert t == "" and all(300 <= i < 3700 for i in ids)
            k = next(k for k in (2, 3) if len(ids) % k == 0 and ids == ids[: len(ids) // k] * k)
            assert 8 <= len(ids) // k <= 48
        else:
            assert d["ids"] == []
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
    # and at other run lengths: a head that looks back a fixed 32 positions must not pass for copying
    assert all({"gain_24", "gain_40", "copied_24", "copied_40"} <= set(c) for c in curve)
    phase = json.loads((ws.get(model_a).path / "course_phase.json").read_text())
    assert phase["tokens_seen"] == 4 * 2 * 64 and phase["machine"]["cores"] >= 1
    assert phase["predicted_induction_tokens"] == round(10 ** 5.7 * (2 * 64) ** 0.5)
    first_a = ws.get(model_a).id

    build(ws.root, cfg)  # goes on from the copy phase: phase a is not trained again
    assert ws.get(model_a).id == first_a
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.pretrain.train import documents, pack

    tok = load_tokenizer(ws.get("tokenizer/spm").path)
    margin = min(300, len(tok) // 10)
    corpus_c, model_c, _ = phase_names(cfg.phases[1])
    m = ws.get(corpus_c).metrics  # the first copy phase: runs of token ids only, over the first 256 ordinary ids
    assert m["natural_repeats"] == 0 and set(m["copy_rich_kinds"]) == {"token_runs"}
    train = load_from_disk(str(ws.get(corpus_c).path / "dataset"))["train"]
    assert all(margin <= i < margin + 256 for r in train for i in r["ids"])
    mixed = next(p for p in cfg.phases if p.name == "copy")  # the last: runs as ids beside natural text and every kind
    m = ws.get(phase_names(mixed)[0]).metrics
    assert m["natural_repeats"] >= 1 and set(m["copy_rich_kinds"]) == set(mixed.copy_kinds)
    train = load_from_disk(str(ws.get(phase_names(mixed)[0]).path / "dataset"))["train"]
    rows = [r for r in train if r["kind"] == "token_runs"][:20]
    assert rows and all(margin <= i < len(tok) - margin for r in rows for i in r["ids"])
    # the pretrain stage packs those ids as they are (text would be re-tokenized into other pieces)
    arr, _ = pack(tok, documents(train), 64)
    flat = arr.reshape(-1).tolist()
    found = [r["ids"] for r in rows if any(flat[i:i + len(r["ids"])] == r["ids"] for i in range(len(flat)))]
    assert len(found) >= len(rows) - 1  # all but one cut at the last block's end
    assert [p["name"] for p in ws.get(model_c).manifest["parents"]][-1] == model_a  # from phase a's weights
    # a corpus made with another recipe is made again, and the run trained on it is not resumed
    assert ws.get(corpus_c).params["copy_kinds"] == cfg.phases[1].copy_kinds
    b = ws.get("model/course-b")
    prev = phase_names(cfg.phases[-2])[1]
    assert [p["name"] for p in b.manifest["parents"]][-1] == prev  # phase b from the last copy phase's weights
    assert ws.exists("model/sft") and ws.get("model/sft").manifest["params"]["config"]["base"] == "model/course-b"
    assert ws.get("sft/data").metrics["train_custom"] > 0  # the reading-comprehension conversations
    reading = [json.loads(x) for x in open(ws.get("sft/data").params["custom_data"], encoding="utf-8")]
    assert {r["source"] for r in reading} == {"news-zh", "reviews-zh"}
    # another reading recipe is another file, so the assistant is fine-tuned again
    from puyu_lab.course.build import sft_config

    again = sft_config(ws, replace(cfg, reading_mix=(("reviews-zh", 1.0),)), base="model/course-b").custom_data
    assert again != ws.get("sft/data").params["custom_data"]
    other = replace(cfg, phases=(cfg.phases[0], replace(cfg.phases[1], copy_share=0.9), *cfg.phases[2:]))
    build(ws.root, other, until=cfg.phases[1].name)
    assert ws.get(corpus_c).params["copy_share"] == 0.9 and ws.get(model_c).metrics["steps"] == cfg.phases[1].max_steps


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
    # the fine-tune's wall time and machine, its recipe and its reading conversations per source
    sft = m["build"]["sft"]
    assert sft["steps"] == ws.get("model/sft").metrics["steps"] and sft["seconds"] > 0 and sft["wall_seconds"] >= sft["seconds"]
    assert sft["machine"]["cores"] >= 1 and sft["config"]["max_length"] == cfg.sft_max_length
    assert sum(sft["reading"]["sources"].values()) == cfg.reading_examples and set(sft["reading"]["sources"]) == {"news-zh", "reviews-zh"}
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


def test_a_phase_is_done_only_when_every_run_length_copies(tmp_path):
    """The stop rule reads the probe at 24, 32 and 40 tokens: a curve point that copies at 32 only (a positional
    head, as runs of one length taught) does not end the phase."""
    from puyu_lab.course.build import phase_done
    from puyu_lab.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    p = next(p for p in CourseConfig().phases if p.name == "copy")  # judged on the full probe
    _, model, run = phase_names(p)
    with ws.write(model, kind="model", stage="pretrain", params={}) as w:
        w.metrics.update({"steps": 10})
    curve = tmp_path / "ws" / "runs" / f"{run}.probe.jsonl"
    curve.parent.mkdir(parents=True, exist_ok=True)
    point = {"step": 10, "gain": 8.1, "copied": 1.0, "gain_24": -5.0, "copied_24": 0.0, "gain_40": -5.4, "copied_40": 0.0}
    curve.write_text(json.dumps(point) + "\n")
    assert not phase_done(ws, p)
    curve.write_text(json.dumps({**point, "gain_24": 7.9, "copied_24": 0.9, "gain_40": 7.5, "copied_40": 0.85}) + "\n")
    assert phase_done(ws, p)


def test_a_seed_carries_the_finished_phases_to_a_new_workspace_and_a_changed_byte_is_refused(layers, tmp_path):
    import pytest

    from puyu_lab.course.seed import RECORD_KIND, export
    from puyu_lab.course.ship import ship
    from puyu_lab.errors import InputError
    from puyu_lab.models import course
    from puyu_lab.workspace import sha256_file

    ws = layers.workspace("tokenizer", tmp_path / "ws")
    cfg = CourseConfig(preset=ModelPreset(**TINY_PRESET)).scaled(2)
    cfg = replace(cfg, phases=tuple(replace(p, block_size=64, batch_size=2) for p in cfg.phases))
    with pytest.raises(InputError, match="no phase"):
        export(ws, tmp_path / "seed", cfg)
    build(ws.root, cfg, until="copy-256")
    seed = export(ws, tmp_path / "seed", cfg)
    assert [p["phase"] for p in seed["phases"]] == ["a", "copy-256"]
    assert seed["weights"] == "copy-256" and seed["next"] == "copy-1k"

    new = layers.workspace("corpus", tmp_path / "new")  # another machine: the shipped corpus, nothing built
    weights = tmp_path / "seed" / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="model/model.safetensors"):
        build(new.root, cfg, seed=tmp_path / "seed")
    assert not new.exists("tokenizer/spm")  # nothing imported from a damaged seed
    data[-1] ^= 1
    weights.write_bytes(bytes(data))

    build(new.root, cfg, seed=tmp_path / "seed")
    assert not (new.root / "runs" / "course-a").exists() and not (new.root / "runs" / "course-copy-256").exists()
    assert new.get("model/course-a").kind == RECORD_KIND  # a record: the seed keeps only the latest weights
    carried = new.get("model/course-copy-256")
    assert carried.params["seed"]["id"] == ws.get("model/course-copy-256").id
    assert sha256_file(carried.path / "model.safetensors") == sha256_file(ws.get("model/course-copy-256").path /
                                                                          "model.safetensors")
    assert [p["name"] for p in new.get("model/course-copy-1k").manifest["parents"]][-1] == "model/course-copy-256"
    assert read_curve(new.root / "runs" / "course-a.probe.jsonl") == read_curve(ws.root / "runs" / "course-a.probe.jsonl")
    root = ship(new, tmp_path / "course_model")  # the shipped record holds every phase, the seeded ones too
    phases = course.shipped_manifest(root)["build"]["phases"]
    assert [p["phase"] for p in phases] == [p.name for p in cfg.phases]
    shipped = [{k: v for k, v in q.items() if k != "tokens_total"} for q in phases[0]["probe_curve"]]
    assert shipped == json.loads((ws.get("model/course-a").path / "probe_curve.json").read_text())


def test_reading_conversations_come_in_their_sources_shares_and_answer_from_their_passage(layers, tmp_path):
    from puyu_lab.artifacts import load_corpus
    from puyu_lab.course.reading import reading_conversations
    from puyu_lab.data.pipeline import is_heldout
    from puyu_lab.rag.questions import PROMPT

    ws = layers.workspace("corpus", tmp_path / "ws")
    docs = load_corpus(ws, "train").to_list()
    rows = reading_conversations(docs, 40, seed=1, mix=(("news-zh", 0.5), ("reviews-zh", 0.5)))
    assert [sum(r["source"] == s for r in rows) for s in ("news-zh", "reviews-zh")] == [20, 20]
    ids = {str(d["id"]) for d in docs}
    assert all(r["doc"] in ids and not is_heldout(r["doc"], 0.05) for r in rows)  # the RAG lab asks held-out news
    for r in rows:
        system, user, reply = r["messages"]
        assert system["role"] == "system" and user["content"].startswith(PROMPT.split("{")[0])
        left, right = user["content"][len("填空："):].split("____")
        answer = reply["content"][len(left):len(reply["content"]) - len(right)]
        assert reply["content"] == left + answer + right and left + answer + right in system["content"]
    assert rows == reading_conversations(docs, 40, seed=1, mix=(("news-zh", 0.5), ("reviews-zh", 0.5)))
    import pytest

    with pytest.raises(ValueError, match="no documents from wiki-xx"):
        reading_conversations(docs, 4, mix=(("wiki-xx", 1.0),))
