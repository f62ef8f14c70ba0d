"""The course model shipped in the package: its files are the manifest's, and it copies from its context.

Either test fails when the shipped model is swapped for another (say the learner's quick model): a plain swap
breaks the sha256s, a swap that rewrites the manifest too still cannot copy.
"""
from __future__ import annotations

from puyu_lab.checks.labs.pretrain import COURSE_COPIED, COURSE_GAIN
from puyu_lab.models import course
from puyu_lab.models.probes import copy_probe, induction_scores


def test_the_shipped_files_are_the_manifests():
    assert course.verify() == []
    m = course.shipped_manifest()
    assert m["bytes"] <= 25 * 2**20
    assert {p["phase"] for p in m["build"]["phases"]} == {"a", "b"}
    for p in m["build"]["phases"]:  # the build's record: tokens, B·C, machine, the probe's curve
        assert p["tokens_seen"] > 0 and p["batch_x_context"] > 0 and p["machine"]["cpu"] and p["probe_curve"]


def test_the_shipped_base_copies_what_it_has_just_seen():
    base = course.load("base")
    r = copy_probe(base)
    assert r["gain"] >= COURSE_GAIN and r["copied"] >= COURSE_COPIED, r
    assert induction_scores(base)["best"]["score"] > 0.3  # an induction head, by its attention


def test_the_held_out_tasks_are_asked_in_unseen_forms():
    from puyu_lab.contracts.tasks import ARITHMETIC_UNSEEN_FORMS

    rows = course.heldout_tasks("arithmetic")
    assert len(rows) >= 40
    forms = [f.split("{e}") for f in ARITHMETIC_UNSEEN_FORMS]
    assert all(any(r["question"] == a + r["expression"] + b for a, b in forms) for r in rows)
