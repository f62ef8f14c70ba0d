"""Submit and grade on the chain's own workspace: every check passes there; the grader re-checks an honest
bundle clean and flags each kind of tampering with its reason — a file changed after submitting, a manifest
figure raised, an artifact swapped, a model that fails the hidden probes, a broken lineage — and refuses
bundles that try to write outside their folder. The gradebook covers three bundles (the ``grading`` fixture)."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from puyu_lab.checks import run
from puyu_lab.checks.grade import grade_one
from puyu_lab.checks.probes import load_probes

from ..conftest import ROOT
from . import tamper

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.timeout(2700)]


def _flags(row, needle):
    return [f for f in row.flags if needle in f]


def test_check_passes_every_check_on_the_chain(grading, capsys):
    from puyu_lab.cli import main

    t0 = time.perf_counter()
    rc = main(["check", "--home", str(grading.ws.root)])
    seconds = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert rc == 0, out
    card = run(grading.ws)
    assert card.ok and card.total >= 20, card.text()
    assert all(r.consistent for r in card.results), card.text()
    assert (grading.ws.root / "report" / "index.html").is_file()
    d = ROOT / "test-artifacts"
    d.mkdir(exist_ok=True)
    (d / "checks-on-chain.txt").write_text(f"{card.text()}\n`puyu-lab check` took {seconds:.1f} s\n", encoding="utf-8")


def test_the_bundle_holds_evidence_hashes_and_environment(grading):
    files = tamper.read(grading.alice)
    info = tamper.info(files)
    assert info["learner"] == "alice" and info["probe_model"] == "model/sft"
    assert info["probe_models"] == ["model/sft", "model/rl"]  # the tool probes' model goes in whole too
    assert info["artifacts"]["model/rl"]["files"]["model.safetensors"]["included"]
    assert info["environment"]["packages"]["torch"] and info["environment"]["cores"]
    assert info["report"]["passed"] == info["report"]["total"]
    sft = info["artifacts"]["model/sft"]["files"]
    assert sft["model.safetensors"]["included"] and "artifacts/model/sft/model.safetensors" in files
    big = [(a, rel) for a, e in info["artifacts"].items() for rel, m in e["files"].items() if not m["included"]]
    assert big, "files over the size cap go in as hashes only"
    for a, rel in big:
        assert f"artifacts/{a}/{rel}" not in files and len(info["artifacts"][a]["files"][rel]["sha256"]) == 64


def test_honest_bundles_grade_clean(grading):
    alice = grading.rows["alice"]
    assert alice.flags == [] and alice.verdict == "ok", alice.flags
    assert alice.passed == len(alice.checks) >= 20
    assert sum(c["source"] == "re-checked" for c in alice.checks.values()) >= 15
    assert alice.probes["selfcog"]["ok"] and alice.probes["selfcog"]["rate"] >= 0.8
    assert alice.probes["tools"]["ok"], alice.probes["tools"]  # model/rl answers fresh arithmetic with the calculator
    bob = grading.rows["bob"]  # honest, unfinished: his later labs and the probes fail, nothing is flagged
    assert bob.verdict == "incomplete" and bob.flags == [], bob.flags
    assert not bob.probes["selfcog"]["ok"]
    done = {k: v["status"] for k, v in bob.checks.items() if v["lab"] in ("01_data.ipynb", "02_pretrain.ipynb")}
    assert done and set(done.values()) == {"pass"}, done
    assert bob.checks["finetune.selfcog"] == {"status": "fail", "figure": "missing model/sft, sft/data",
                                             "source": "re-checked", "lab": "03_finetune.ipynb"}


def test_gradebook_flags_the_tampered_bundle_with_its_reasons(grading):
    m = grading.rows["mallory"]
    assert m.verdict == "flagged"
    assert _flags(m, "preference.dpo: the manifest claims 0.95"), m.flags  # the raised DPO figure
    assert _flags(m, "hidden probes selfcog"), m.flags  # the base model does not know its name
    assert not m.probes["selfcog"]["ok"]
    rows = list(csv.DictReader(open(grading.book.csv_path, encoding="utf-8")))
    assert [r["learner"] for r in rows] == ["alice", "bob", "mallory"]
    assert [r["verdict"] for r in rows] == ["ok", "incomplete", "flagged"]
    assert "metric edited" in rows[2]["flags"] and rows[2]["probe:selfcog"].startswith(("0/", "1/"))
    page = grading.book.html_path.read_text(encoding="utf-8")
    assert page.count("<details class='learner'") == 3 and "https://" not in page


def test_a_file_changed_after_submitting(grading, tmp_path):
    files = tamper.read(grading.alice)
    key = "artifacts/model/dpo/heldout_scores.jsonl"
    files[key] = files[key].replace(b'"correct": false', b'"correct": true ')
    row = grade_one(tamper.write(files, tmp_path / "naive.zip"))
    assert _flags(row, "model/dpo/heldout_scores.jsonl: content differs from the bundle's list"), row.flags


def test_a_swapped_artifact(grading, tmp_path):
    files = tamper.read(grading.alice)  # the base model's weights as model/sft, the bundle's list made to agree
    tamper.replace_file(files, "model/sft", "model.safetensors",
                        (grading.ws.get("model/base").path / "model.safetensors").read_bytes())
    row = grade_one(tamper.write(files, tmp_path / "swap.zip"))
    assert _flags(row, "model/sft/model.safetensors: the bundle's list differs from what the finetune stage wrote (swapped)"), row.flags


def test_a_swapped_model_with_forged_digests_fails_the_hidden_probes(grading, tmp_path):
    files = tamper.read(grading.alice)
    tamper.replace_file(files, "model/sft", "model.safetensors",
                        (grading.ws.get("model/base").path / "model.safetensors").read_bytes(), manifest_too=True)
    row = grade_one(tamper.write(files, tmp_path / "forged.zip"), load_probes(grading.probes))
    assert not _flags(row, "swapped") and not _flags(row, "differs"), row.flags  # the forgery is consistent…
    assert _flags(row, "hidden probes selfcog"), row.flags  # …and the model still does not know its name


def test_a_raised_figure_is_caught_against_its_evidence(grading, tmp_path):
    files = tamper.read(grading.alice)
    tamper.edit_manifest(files, "model/sft", lambda m: m["metrics"].update(eval_loss=0.1))
    row = grade_one(tamper.write(files, tmp_path / "edited.zip"))
    assert _flags(row, "finetune.loss: the manifest claims 0.1"), row.flags


def test_an_artifact_from_another_run_breaks_the_lineage(grading, tmp_path):
    files = tamper.read(grading.alice)
    tamper.edit_manifest(files, "model/base", lambda m: m.update(id="0123456789ab"))
    row = grade_one(tamper.write(files, tmp_path / "mixed.zip"))
    assert _flags(row, "model/sft was made from model/base"), row.flags


def test_a_reported_pass_that_fails_on_the_bundle(grading, tmp_path):
    files = tamper.read(grading.alice)  # held-out answers rewritten without the name, the list made to agree
    sc = json.loads(files["artifacts/model/sft/selfcheck.json"])
    for r in sc["selfcog"]:
        r["answer"] = "我不知道。"
    tamper.replace_file(files, "model/sft", "selfcheck.json", json.dumps(sc, ensure_ascii=False).encode(), manifest_too=True)
    row = grade_one(tamper.write(files, tmp_path / "reported.zip"))
    assert _flags(row, "finetune.selfcog: reported passed"), row.flags


def test_a_bundle_cannot_write_outside_its_folder(grading, tmp_path):
    files = tamper.read(grading.alice)
    info = tamper.info(files)
    evil = "../../../../escaped.txt"
    info["artifacts"]["model/sft"]["files"][evil] = {"sha256": "0" * 64, "bytes": 4, "included": True}
    files[f"artifacts/model/sft/{evil}"] = b"evil"
    info["artifacts"]["../outside"] = {"manifest": {"id": "x"}, "files": {}}
    tamper.put_info(files, info)
    work = tmp_path / "work"
    work.mkdir()
    row = grade_one(tamper.write(files, tmp_path / "evil.zip"), work=work)
    assert _flags(row, "unsafe file name"), row.flags
    assert _flags(row, "'../outside' is not a workspace name"), row.flags
    assert not list(tmp_path.rglob("escaped.txt")) and not (tmp_path / "outside").exists()
    assert list(work.iterdir()) == []  # the grader's scratch copy is gone


def test_not_a_bundle(tmp_path):
    p = tmp_path / "x.zip"
    p.write_bytes(b"not a zip")
    assert grade_one(p).flags[0].startswith("not a readable zip")
    tamper.write({"bundle.json": b'{"format": "other"}'}, p)
    assert "expected 'puyu-lab-bundle/1'" in grade_one(p).flags[0]



def _hand_made_bundle(tmp_path, name: str, extra: dict[str, bytes], edit=None):
    """A bundle of one small artifact (``sft/data``) written by hand: its own file, the ``extra`` files added to
    the bundle's list as included, the manifest passed through ``edit`` in both places it is kept."""
    import hashlib

    from puyu_lab.checks.bundle import FORMAT
    from puyu_lab.workspace import Workspace

    ws = Workspace(tmp_path / f"{name}-ws")
    with ws.write("sft/data", kind="dataset", stage="finetune") as w:
        (w.path / "train.jsonl").write_text("{}\n")
    manifest = ws.get("sft/data").manifest
    if edit:
        edit(manifest)
    files, listing = {"artifacts/sft/data/manifest.json": json.dumps(manifest).encode()}, {}
    for rel, data in {"train.jsonl": b"{}\n", **extra}.items():
        files[f"artifacts/sft/data/{rel}"] = data
        listing[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "included": True}
    files["bundle.json"] = json.dumps({"format": FORMAT, "learner": name,
                                       "artifacts": {"sft/data": {"manifest": manifest, "files": listing}}}).encode()
    return tamper.write(files, tmp_path / f"{name}.zip")


def test_a_restore_step_that_fails_keeps_what_the_steps_before_it_found(tmp_path):
    """A file name too long for the file system makes extracting it raise (OSError), and a parent entry whose
    name is a list made the lineage step raise (TypeError). Each failure is a flag of its own; the flags the
    earlier steps raised stay in the row, and the bundle is still re-checked (the row has its checks)."""
    long = "x" * 300 + ".jsonl"
    row = grade_one(_hand_made_bundle(tmp_path, "mallory", {long: b"added\n"}))
    assert not _flags(row, "grading failed"), row.flags
    assert _flags(row, f"sft/data/{long}: not written by the stage (added afterwards)"), row.flags  # found before
    assert _flags(row, f"sft/data/{long}: could not be restored (OSError"), row.flags
    assert row.checks and row.learner == "mallory"

    row = grade_one(_hand_made_bundle(tmp_path, "trent", {}, edit=lambda m: m.update(
        parents=[{"name": "corpus/clean", "id": "0"}, {"name": ["model/base"], "id": "1"}])))
    assert not _flags(row, "grading failed"), row.flags
    assert _flags(row, "sft/data was made from corpus/clean 0, which the bundle leaves out"), row.flags
    assert _flags(row, "sft/data: a malformed parent entry"), row.flags and row.checks

# ---- attacks on the grader (each of these succeeded against the first version of grade.py) ----------------
def test_a_bundled_model_cannot_run_its_own_code(grading, tmp_path):
    marker = tmp_path / "PWNED"
    files = tamper.read(grading.alice)
    cfg = json.loads(files["artifacts/model/sft/config.json"])
    cfg.update(model_type="evil-model", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.Evil"})
    tamper.replace_file(files, "model/sft", "config.json", json.dumps(cfg).encode(), manifest_too=True)
    code = f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import LlamaConfig as EvilConfig\n"
    files["artifacts/model/sft/evil.py"] = code.encode()
    d = tamper.info(files)
    import hashlib
    meta = {"sha256": hashlib.sha256(code.encode()).hexdigest(), "bytes": len(code), "included": True}
    d["artifacts"]["model/sft"]["files"]["evil.py"] = meta
    d["artifacts"]["model/sft"]["manifest"]["files"]["evil.py"] = {k: meta[k] for k in ("sha256", "bytes")}
    files["artifacts/model/sft/manifest.json"] = json.dumps(d["artifacts"]["model/sft"]["manifest"]).encode()
    tamper.put_info(files, d)
    row = grade_one(tamper.write(files, tmp_path / "code.zip"), load_probes(grading.probes))
    assert not marker.exists()
    assert _flags(row, "model/sft: not probed — config.json names custom code"), row.flags


def test_an_adapter_cannot_point_the_probes_at_the_teachers_model(grading, tmp_path):
    files = tamper.read(grading.alice)
    adapter = json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(grading.ws.get("model/sft").path)}).encode()
    tamper.replace_file(files, "model/sft", "model.safetensors", b"junk", manifest_too=True)
    files["artifacts/model/sft/adapter_config.json"] = adapter
    d = tamper.info(files)
    d["artifacts"]["model/sft"]["files"]["adapter_config.json"] = {"sha256": "0" * 64, "bytes": len(adapter), "included": True}
    tamper.put_info(files, d)
    row = grade_one(tamper.write(files, tmp_path / "adapter.zip"), load_probes(grading.probes))
    assert not row.probes["selfcog"]["ok"] and row.probes["selfcog"]["passed"] == 0
    assert _flags(row, "refuses adapter_config.json"), row.flags


def test_a_file_name_cannot_lead_to_the_teachers_files(grading, tmp_path):
    files = tamper.read(grading.alice)  # ladder.json names the teacher's own Q4_K_M; the bundle has none
    ladder = json.loads(files["artifacts/gguf/sft/ladder.json"])
    ladder["Q4_K_M"]["file"] = str(grading.ws.get("gguf/sft").path / ladder["Q4_K_M"]["file"])
    del files["artifacts/gguf/sft/Q4_K_M.gguf"]
    tamper.replace_file(files, "gguf/sft", "ladder.json", json.dumps(ladder).encode(), manifest_too=True)
    row = grade_one(tamper.write(files, tmp_path / "ladder.zip"))
    assert row.checks["deploy.q4km"]["status"] == "fail", row.checks["deploy.q4km"]


def test_a_withheld_small_file_a_dropped_artifact_and_a_made_up_check(grading, tmp_path):
    files = tamper.read(grading.alice)
    d = tamper.info(files)
    d["artifacts"]["model/sft"]["files"]["selfcheck.json"]["included"] = False
    del files["artifacts/model/sft/selfcheck.json"]
    del d["artifacts"]["model/dpo"]
    for k in [k for k in files if k.startswith("artifacts/model/dpo/")]:
        del files[k]
    d["report"]["results"].append({"id": "bonus.extra_credit", "scope": "machine", "ok": True, "lab": "00_tour.ipynb"})
    tamper.put_info(files, d)
    row = grade_one(tamper.write(files, tmp_path / "withheld.zip"))
    assert _flags(row, "model/sft/selfcheck.json: withheld although it is small"), row.flags
    assert _flags(row, "which the bundle leaves out"), row.flags  # eval/chain was made from model/dpo
    assert "bonus.extra_credit" not in row.checks
    assert row.checks["preference.dpo"]["status"] == "fail"


def _says_one_word(base_weights: Path, word_id: int) -> bytes:
    """The attacker's weights: the base model rewired to say one token to anything. Every input embedding is the
    same vector and no layer writes to the residual stream, so the last hidden state is that vector whatever the
    prompt; the output head then points only at ``word_id``. A learner may hand in any weights, so this is a fair
    stand-in for "a model that says X to everything" on every machine (an untrained base model may instead say
    nothing at all: on the CI machine its every probe reply was empty)."""
    import torch
    from safetensors.torch import load_file, save

    w = load_file(base_weights)
    emb = w["model.embed_tokens.weight"]
    w["model.embed_tokens.weight"] = emb[word_id].expand_as(emb).clone()
    for k in w:
        if k.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
            w[k] = torch.zeros_like(w[k])
    head = torch.zeros_like(w["lm_head.weight"])
    head[word_id] = emb[word_id] * w["model.norm.weight"] * 100.0
    w["lm_head.weight"] = head
    return save(w)


def test_a_name_the_model_says_to_anything_passes_only_without_the_teachers_name(grading, tmp_path):
    from tokenizers import Tokenizer

    from puyu_lab.checks.probes import ProbeGroup

    base = grading.ws.get("model/base").path
    word = Tokenizer.from_file(str(base / "tokenizer.json")).token_to_id("的")
    assert word is not None  # a common piece of Chinese: every tokenizer the chain trains has it
    files = tamper.read(grading.alice)  # the bundle's assistant never learnt a name: it says 的 to anything
    tamper.replace_file(files, "model/sft", "model.safetensors",
                        _says_one_word(base / "model.safetensors", word), manifest_too=True)
    fixed = load_probes(grading.probes)
    free = [ProbeGroup(g.id, g.kind, g.items, g.min_pass, g.title, g.model, g.max_new_tokens) for g in fixed]
    asked = grade_one(tamper.write(files, tmp_path / "ask.zip"), free).probes["selfcog"]["rows"]
    assert all(r["reply"].startswith("的的") for r in asked), asked  # the rewired model says one thing to all
    name = "的的"  # the forged assistant name: a text every reply contains
    tamper.edit_manifest(files, "sft/data", lambda m: m["metrics"].update(assistant_name=name))
    bundle = tamper.write(files, tmp_path / "name.zip")
    assert grade_one(bundle, free).probes["selfcog"]["ok"]  # the attack, when the bundle names its assistant
    assert not grade_one(bundle, fixed).probes["selfcog"]["ok"]  # the guard: the teacher fixes the name


def test_one_broken_bundle_does_not_cost_the_class_its_gradebook(grading, tmp_path):
    from puyu_lab.checks.grade import grade

    subs = tmp_path / "subs"
    subs.mkdir()
    files = tamper.read(grading.alice)
    d = tamper.info(files)
    d["learner"] = '=HYPERLINK("http://evil.example/","click")'
    d["environment"] = ["not", "a", "dict"]
    tamper.put_info(files, d)
    tamper.write(files, subs / "broken.zip")
    (subs / "alice.zip").write_bytes(grading.alice.read_bytes())
    copy = tamper.read(grading.alice)
    d = tamper.info(copy)
    d["learner"] = "eve"
    tamper.put_info(copy, d)
    tamper.write(copy, subs / "eve.zip")
    book = grade(subs)
    rows = {r.bundle: r for r in book.rows}
    assert _flags(rows["broken.zip"], "'environment' should be a dict")
    # the same fine-tuned weights in two bundles: one learner's work handed in twice
    assert _flags(rows["eve.zip"], "model/sft: the same weights as the bundle of alice")
    assert _flags(rows["alice.zip"], "the same weights as the bundle of eve")
    text = book.csv_path.read_text(encoding="utf-8")
    assert "\n=HYPERLINK" not in text and ",=" not in text  # no cell a spreadsheet would run as a formula
