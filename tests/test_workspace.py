import json
import multiprocessing as mp
import signal
import subprocess
import sys
import textwrap

import pytest

from puyu_lab.workspace import MissingArtifact, Workspace, WorkspaceError


def test_manifest_roundtrip(ws):
    with ws.write("corpus/raw", kind="corpus", stage="data", params={"sources": ["news-zh"], "n": 3}) as w:
        (w.path / "data.txt").write_text("hello")
        w.metrics["documents"] = 3
        w.metrics["ratio"] = 0.5
    with ws.write("corpus/clean", kind="corpus", stage="data", parents=["corpus/raw"]) as w:
        (w.path / "x").write_text("y")
    raw = ws.get("corpus/raw")
    assert raw.kind == "corpus" and raw.stage == "data"
    assert raw.params == {"sources": ["news-zh"], "n": 3}
    assert raw.metrics == {"documents": 3, "ratio": 0.5}
    assert (raw.path / "data.txt").read_text() == "hello"
    m = json.loads((ws.root / "corpus/raw/manifest.json").read_text())
    assert m["package_version"] and m["created"] and m["id"] == raw.id
    clean = ws.get("corpus/clean")
    assert clean.parents == [{"name": "corpus/raw", "id": raw.id}]
    assert [a.name for a in ws.list()] == ["corpus/clean", "corpus/raw"]
    assert [a.name for a in ws.list(kind="corpus", prefix="corpus/c")] == ["corpus/clean"]
    assert not ws.is_stale(clean)
    with ws.write("corpus/raw", kind="corpus", stage="data") as w:
        pass
    assert ws.is_stale(ws.get("corpus/clean")), "rewriting a parent makes the child stale"


def test_missing_artifact_names_the_lab(ws):
    with pytest.raises(MissingArtifact, match=r"01_data\.ipynb"):
        ws.get("corpus/clean")
    with pytest.raises(MissingArtifact, match=r"02_pretrain\.ipynb"):
        ws.get("model/base")
    with pytest.raises(MissingArtifact, match=r"06_deploy\.ipynb"):
        ws.get("gguf/Q4_K_M")


def test_bad_names_rejected(ws):
    for bad in ["", "/abs", "a//b", "../x", ".store/x", "a b"]:
        with pytest.raises(WorkspaceError):
            with ws.write(bad, kind="k", stage="s"):
                pass


def test_failed_write_leaves_nothing(ws):
    with pytest.raises(RuntimeError):
        with ws.write("model/base", kind="model", stage="pretrain") as w:
            (w.path / "half").write_text("x")
            raise RuntimeError("boom")
    assert not ws.exists("model/base")
    assert ws.list() == []
    assert list(ws.store.iterdir()) == []


def test_replace_keeps_old_until_new_complete(ws):
    with ws.write("model/base", kind="model", stage="pretrain") as w:
        (w.path / "v").write_text("1")
    with pytest.raises(RuntimeError):
        with ws.write("model/base", kind="model", stage="pretrain") as w:
            (w.path / "v").write_text("2")
            raise RuntimeError("killed")
    assert (ws.get("model/base").path / "v").read_text() == "1"


WRITER = textwrap.dedent("""
    import sys, time
    from puyu_lab.workspace import Workspace
    ws = Workspace(sys.argv[1])
    with ws.write("model/base", kind="model", stage="pretrain") as w:
        for i in range(1000):
            (w.path / f"shard{i}").write_bytes(b"x" * 1000)
            if i == 5:
                print("writing", flush=True)
            time.sleep(0.01)
""")


def test_writer_killed_mid_write_leaves_no_artifact(ws):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(ws.root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not ws.exists("model/base")
    assert ws.list() == []
    partials = list(ws.store.glob("*.partial"))
    assert partials, "the killed writer's partial directory is what gc cleans"
    assert ws.gc(older_than_s=0) == len(partials)
    assert list(ws.store.iterdir()) == []


def _concurrent_writer(root, tag, barrier):
    ws = Workspace(root)
    barrier.wait()
    with ws.write("corpus/clean", kind="corpus", stage="data", params={"writer": tag}) as w:
        for i in range(50):
            (w.path / f"part{i}").write_text(tag * 100)
        (w.path / "DONE").write_text(tag)


def test_two_concurrent_writers_leave_one_complete_artifact(ws):
    ctx = mp.get_context("spawn")
    for _ in range(3):
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=_concurrent_writer, args=(str(ws.root), tag, barrier)) for tag in "ab"]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        art = ws.get("corpus/clean")
        tag = art.params["writer"]
        files = sorted(p.name for p in art.path.iterdir())
        assert len(files) == 52  # 50 parts + DONE + manifest
        assert (art.path / "DONE").read_text() == tag
        assert all((art.path / f"part{i}").read_text() == tag * 100 for i in range(50)), "mixed writers"
        assert [a.name for a in ws.list()] == ["corpus/clean"]


def test_reader_never_sees_half_an_artifact(ws):
    """While a writer keeps rewriting, every read finds a manifest and all its files."""
    code = textwrap.dedent("""
        import sys
        from puyu_lab.workspace import Workspace
        ws = Workspace(sys.argv[1])
        for k in range(40):
            with ws.write("tokenizer/spm", kind="tokenizer", stage="pretrain", params={"k": k}) as w:
                for i in range(20):
                    (w.path / f"f{i}").write_text(str(k))
    """)
    with ws.write("tokenizer/spm", kind="tokenizer", stage="pretrain", params={"k": -1}) as w:
        for i in range(20):
            (w.path / f"f{i}").write_text("-1")
    proc = subprocess.Popen([sys.executable, "-c", code, str(ws.root)])
    reads = 0
    while proc.poll() is None:
        art = ws.get("tokenizer/spm")
        k = str(art.params["k"])
        try:
            assert all((art.path / f"f{i}").read_text() == k for i in range(20))
        except FileNotFoundError:
            pytest.fail("a resolved artifact lost its files mid-read")
        reads += 1
    assert proc.returncode == 0 and reads > 0


def test_default_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PUYU_LAB_HOME", str(tmp_path / "elsewhere"))
    assert Workspace().root == tmp_path / "elsewhere"
    monkeypatch.delenv("PUYU_LAB_HOME")
    assert str(Workspace().root) == "workspace"


def test_a_stage_reading_an_undeclared_artifact_fails(tmp_path):
    """Stages meet only through declared artifacts: through a stage's view of the workspace
    (``ws.for_stage(key)``), reading an artifact that stages.py does not list in its needs raises, whoever
    calls and in whatever thread; the plain workspace (a lab, a panel) reads anything."""
    import threading

    from puyu_lab.stages import STAGES, may_read
    from puyu_lab.workspace import UndeclaredRead, WorkspaceError

    ws = Workspace(tmp_path / "ws")
    with ws.write("agent/eval", kind="report", stage="agent") as w:
        (w.path / "rows.jsonl").write_text("")
    with ws.write("sft/data", kind="dataset", stage="finetune") as w:
        (w.path / "train.jsonl").write_text("")

    pretrain = ws.for_stage("pretrain")
    with pytest.raises(UndeclaredRead, match="pretrain stage read 'agent/eval'.*stages.py"):
        pretrain.get("agent/eval")
    caught = []
    reader = threading.Thread(target=lambda: caught.append(pytest.raises(UndeclaredRead, pretrain.get, "agent/eval")))
    reader.start()
    reader.join()
    assert caught, "a read in another thread is checked too"
    assert ws.for_stage("eval").get("sft/data").name == "sft/data"  # declared: eval reads the held-out parts
    assert ws.for_stage("agent").get("agent/eval")  # its own output
    assert ws.get("agent/eval") and ws.stage is None  # the plain workspace: no check
    assert pretrain.for_stage("pretrain") is pretrain and pretrain.for_stage("agent").get("agent/eval")
    assert pretrain.root == ws.root and "stage='pretrain'" in repr(pretrain)
    with pytest.raises(WorkspaceError, match="no stage 'pretrian' in puyu_lab/stages.py: use one of data, "):
        ws.for_stage("pretrian")
    # an engine's entry point reads through its stage's view even when handed the plain workspace
    from puyu_lab.pretrain.train import train_tokenizer

    with pytest.raises(UndeclaredRead, match="pretrain stage read 'agent/eval'"):
        train_tokenizer(ws, 2000, corpus="agent/eval")
    # what the engines read is declared (the chain's data flow, as the issue lists it)
    assert may_read("finetune", "corpus/clean") and may_read("eval", "sft/data") and may_read("agent", "sft/data")
    assert not may_read("data", "model/sft") and {s.key for s in STAGES} == {
        "data", "pretrain", "finetune", "preference", "rl", "deploy", "eval", "agent", "rag"}
    assert may_read("rag", "model/base") and may_read("rag", "corpus/clean") and not may_read("rag", "gguf/sft")
