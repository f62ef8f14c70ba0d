"""The shipped course model: its files are the manifest's, it copies from its context, and the learner's quick
model in its place fails the same figures."""
from __future__ import annotations

import json
import shutil

import pytest

from puyu_lab.models import course
from puyu_lab.models.probes import copy_probe

MIN_GAIN, MIN_COPIED = course.MIN_COPY_GAIN, course.MIN_COPIED  # the bar for the course base


def test_the_shipped_files_match_their_manifest():
    m = course.shipped_manifest()
    assert course.verify() == [], course.verify()
    assert m["bytes"] <= 25 * 2**20 and sum(f["bytes"] for f in m["files"].values()) == m["bytes"]
    for part in course.PARTS:
        folder = course.course_path(part)
        assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.model").is_file()
    build = m["build"]
    # the record the issue asks for: tokens seen, the B·C schedule, wall time and machine, the probe's curve
    assert build["tokens_seen"] == sum(p["tokens_seen"] for p in build["phases"]) > 10_000_000
    for p in build["phases"]:
        assert p["batch_x_context"] and p["seconds"] > 0 and p["machine"]["cpu"] and p["probe_curve"], p["phase"]
    assert build["sft"]["steps"] > 0


def test_verify_names_an_edited_file(tmp_path):
    root = tmp_path / "course_model"
    shutil.copytree(course.COURSE_DIR, root)
    f = root / course.FOLDERS["base"] / "config.json"
    f.write_text(f.read_text(encoding="utf-8") + " ", encoding="utf-8")  # one byte more
    (root / "stray.txt").write_text("x", encoding="utf-8")
    problems = course.verify(root)
    assert any(p.startswith("course-base/config.json") for p in problems) and "stray.txt: not in the manifest" in problems


def test_the_course_base_copies_from_its_context():
    base = course.load("base")
    r = copy_probe(base)
    print("course base", r)
    assert r["gain"] >= MIN_GAIN and r["copied"] >= MIN_COPIED, r


@pytest.mark.slow
def test_the_quick_model_in_its_place_fails(tmp_path):
    """Swap the shipped base for a quick-preset model trained the chain's way (a short run on the chain's data): the
    manifest no longer matches, and the copy probe is far below the bar."""
    from puyu_lab.data.pipeline import prepare
    from puyu_lab.data.sources import load_sources
    from puyu_lab.pretrain.model import PRESETS
    from puyu_lab.pretrain.train import PretrainConfig, pretrain, train_tokenizer
    from puyu_lab.models import HFModel
    from puyu_lab.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    prepare(raw=load_sources(["news-zh", "reviews-zh"], limit_per_source=300, seed=1), show_progress=False).export(ws)
    train_tokenizer(ws, PRESETS["quick"].vocab_size)
    pretrain(ws, PretrainConfig(preset=PRESETS["quick"], batch_size=8, max_steps=60, warmup_steps=5, eval_every=60,
                                save_every=60, sample_every=0, eval_blocks=4, progress_bar=False))
    root = tmp_path / "course_model"
    shutil.copytree(course.COURSE_DIR, root)
    dest = root / course.FOLDERS["base"]
    shutil.rmtree(dest)
    shutil.copytree(ws.get("model/base").path, dest)
    assert any(p.startswith("course-base/model.safetensors") for p in course.verify(root))
    r = copy_probe(HFModel.load(dest))
    print("quick model as the course base", r)
    assert not (r["gain"] >= MIN_GAIN and r["copied"] >= MIN_COPIED), r


def test_the_heldout_tasks_are_phrased_as_no_fine_tune_conversation_was():
    from puyu_lab.contracts.tasks import ARITHMETIC_UNSEEN_FORMS, DATE_UNSEEN_FORMS

    held = json.loads((course.COURSE_DIR / course.HELDOUT).read_text(encoding="utf-8"))
    assert len(held["arithmetic"]) >= 40 and len(held["date"]) >= 40 and len(held["notool"]) >= 20
    forms = [f.split("{")[0] for f in ARITHMETIC_UNSEEN_FORMS + DATE_UNSEEN_FORMS]
    assert all(any(t["question"].startswith(f) for f in forms) for t in held["arithmetic"] + held["date"])
