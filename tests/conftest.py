from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from . import procs as _procs

_procs.mark()  # everything this test run starts carries the mark: what it leaves behind is found by it

ROOT = Path(__file__).resolve().parent.parent

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# The test session speaks English: tests match English messages (pytest.raises(match=…) reads str(err), which is in
# the current language), so a zh_CN machine or an exported PUYU_LAB_LANG=zh must not change them. A test that wants
# Chinese sets it itself (puyu_lab.i18n.set_language, or PUYU_LAB_LANG in a child's environment) and restores it.
os.environ["PUYU_LAB_LANG"] = "en"
if "puyu_lab.i18n" in sys.modules:  # imported before this file: it read the language already
    sys.modules["puyu_lab.i18n"].set_language("en")


# ---- nothing a test starts outlives it: the run fails when a kernel, server or browser is left ----------------
STRAYS: list[str] = []  # orphans found and ended before a chain lab (reported at the end, failing the run)


def pytest_sessionfinish(session, exitstatus):
    from . import procs

    left = procs.leftovers()
    procs.kill(procs.leftovers(idle=True))  # Chromium's idle crash reporters too, without counting them
    if left or STRAYS:
        lines = STRAYS + procs.describe(left)
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = ("processes outlived the tests that started them (each competes with later tests for the CPU; "
               "stop it in the test's teardown):\n  " + "\n  ".join(lines))
        if tr is not None:
            tr.write_line("")
            tr.write_line(msg, red=True, bold=True)
        else:
            print(msg)
        session.exitstatus = 1


def end_strays() -> None:
    """Before a chain lab: end the kernels and servers no test owns any more, and any kernel at all (the lab's own
    starts after this), so the chain runs alone; each is named at the end of the run, which then fails."""
    from . import procs

    left = procs.leftovers()
    stray = procs.orphans(left) + [p for p in left if "ipykernel" in " ".join(procs.describe([p]))]
    stray = list({p.pid: p for p in stray}.values())
    if stray:
        STRAYS.extend(f"{d} (running when a chain lab began)" for d in procs.describe(stray))
        procs.kill(stray)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ws(tmp_path):
    from puyu_lab.workspace import Workspace

    return Workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave things worth looking at (screenshots, reports): test-artifacts/."""
    d = ROOT / "test-artifacts"
    d.mkdir(exist_ok=True)
    return d


# ---- the chain in miniature, built once per session in layers ------------------------------------
# corpus → tokenizer → base → sft: each layer is a real workspace made by the stages' own engines
# (small real data, a tiny real model), built on first use and copied for each test that asks, so
# a test can write into its copy freely. One recipe instead of a near-copy per test folder.
TINY_PRESET = dict(hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=512,
                   vocab_size=3072, block_size=64)  # row lengths multiples of 256: real K-quants
LAYERS = ("corpus", "tokenizer", "base", "sft")


class Layers:
    def __init__(self, root: Path):
        self.root = root
        self.built: dict[str, Path] = {}

    def _build(self, layer: str) -> Path:
        from puyu_lab.workspace import Workspace

        if layer in self.built:
            return self.built[layer]
        i = LAYERS.index(layer)
        dest = self.root / layer
        if i:
            shutil.copytree(self._build(LAYERS[i - 1]), dest, symlinks=True)
        ws = Workspace(dest)
        if layer == "corpus":
            from puyu_lab.data.pipeline import prepare
            from puyu_lab.data.sources import load_sources

            prepare(raw=load_sources(["news-zh", "reviews-zh"], limit_per_source=400, seed=1),
                    show_progress=False).export(ws)
        elif layer == "tokenizer":
            from puyu_lab.pretrain.train import train_tokenizer

            train_tokenizer(ws, 3072)
        elif layer == "base":
            from puyu_lab.pretrain.model import ModelPreset
            from puyu_lab.pretrain.train import PretrainConfig, pretrain

            pretrain(ws, PretrainConfig(preset=ModelPreset(**TINY_PRESET), batch_size=4, max_steps=20, warmup_steps=2,
                                        eval_every=20, save_every=20, sample_every=0, eval_blocks=4,
                                        progress_bar=False, bf16=False))
        elif layer == "sft":
            from puyu_lab.finetune.data import SFTDataSettings
            from puyu_lab.finetune.train import SFTConfig, finetune

            data = SFTDataSettings(dialogs_zh=30, dialogs_en=10, sentiment_max=20, tool_examples=10, tool_heldout=5,
                                   self_repeat=1)
            finetune(ws, SFTConfig(max_steps=4, batch_size=4, max_length=160, sample_every=0, save_every=4,
                                   progress_bar=False, data=data, bf16=False), score=False)
        self.built[layer] = dest
        return dest

    def workspace(self, layer: str, dest: Path):
        """A fresh copy of the workspace built up to ``layer`` (``corpus``, ``tokenizer``, ``base``, ``sft``)."""
        from puyu_lab.workspace import Workspace

        shutil.copytree(self._build(layer), dest, symlinks=True)
        return Workspace(dest)

    def path(self, layer: str) -> Path:
        """The shared (read-only by convention) workspace of ``layer``."""
        return self._build(layer)


@pytest.fixture(scope="session")
def layers(tmp_path_factory) -> Layers:
    return Layers(tmp_path_factory.mktemp("layers"))


# ---- a tiny real chat model and its GGUF ladder (deploy, agent and model-layer tests) ----------------
@pytest.fixture(scope="session")
def model_dir(layers, tmp_path_factory):
    """The tiny base model with the chat template, saved as the stages save it."""
    from puyu_lab.models.template import install_template
    from puyu_lab.models.tokenizer import load_tokenizer, save_tokenizer
    from puyu_lab.workspace import Workspace

    d = tmp_path_factory.mktemp("chat") / "model"
    shutil.copytree(Workspace(layers.path("base")).get("model/base").path, d)
    tok = load_tokenizer(d)
    install_template(tok)
    save_tokenizer(tok, d)
    return d


@pytest.fixture(scope="session")
def ladder(model_dir, tmp_path_factory):
    from puyu_lab.deploy.converter import convert
    from puyu_lab.deploy.quantize import LADDER, quantize

    out = tmp_path_factory.mktemp("gguf")
    files = {"F32": convert(model_dir, out / "F32.gguf")}
    for lv in LADDER[1:]:
        files[lv] = quantize(files["F32"], out / f"{lv}.gguf", lv)
    return files


# ---- the chain: every lab run once per session, in order, in one workspace --------------------------
class Chain:
    """Runs the labs in order into one workspace, each at most once per session: ``test_labs`` reports
    each lab, and the browser tests that need the whole chain's artifacts reuse the same run."""

    def __init__(self, root: Path):
        from puyu_lab.labrunner import discover
        from puyu_lab.workspace import Workspace

        self.labs = discover(ROOT / "labs")
        self.ws = Workspace(root / "workspace")
        self.snapshot_root = root / "snapshot"
        self.out = self.ws.root / "chain"
        self.results: dict[str, object] = {}

    def run(self, nb: Path):
        from puyu_lab.labrunner import run_lab

        if nb.name in self.results:
            return self.results[nb.name]
        for earlier in self.labs[:self.labs.index(nb)]:
            res = self.results.get(earlier.name) or self.run(earlier)
            if not res.ok:
                pytest.skip(f"an earlier lab failed: {res.lab} ({res.error[:200]})")
        end_strays()  # the chain runs alone: a kernel an earlier test left would take its CPU
        t0 = time.perf_counter()
        try:
            res = run_lab(nb, self.out, profile="quick", workspace=self.ws)
        except BaseException as exc:  # pytest-timeout's failure, Ctrl-C: remember it, so later tests skip
            from puyu_lab.labrunner import LabResult

            why = "timed out" if "Timeout" in f"{type(exc).__name__} {exc}" else f"{type(exc).__name__}"
            res = LabResult(nb.name, False, time.perf_counter() - t0, error=f"{why}: {str(exc)[:300]}")
            self.results[nb.name] = res
            self._report()
            raise
        self.results[nb.name] = res
        self._report()
        if res.ok and nb == self.labs[-1]:
            self._snapshot()
        return res

    def _snapshot(self) -> None:
        """The workspace as the chain left it (later tests re-run labs in the page on ``ws``)."""
        if not self.snapshot_root.exists():
            shutil.copytree(self.ws.root, self.snapshot_root, symlinks=True)

    @property
    def snapshot(self):
        from puyu_lab.workspace import Workspace

        self.run_all()
        return Workspace(self.snapshot_root)

    def _report(self) -> None:
        from puyu_lab.labrunner import write_report

        write_report(list(self.results.values()), self.out, "quick")
        d = ROOT / "test-artifacts"
        d.mkdir(exist_ok=True)
        (d / "chain-summary.txt").write_text("\n".join(r.line() for r in self.results.values()) + "\n")

    def run_all(self) -> list:
        return [self.run(nb) for nb in self.labs]


@pytest.fixture(scope="session")
def chain(tmp_path_factory) -> Chain:
    return Chain(tmp_path_factory.mktemp("chain"))


# ---- grading: bundles submitted from the chain's workspace, graded by the teacher's command ----------------
class Grading:
    """Three bundles made from the chain's workspace — alice's (every lab), bob's (he stopped after the
    pretraining lab) and mallory's (alice's, with the fine-tuned model swapped for the base model and the DPO
    figure raised) — graded with a hidden probe file."""

    def __init__(self, chain, root: Path):
        import json

        from puyu_lab.checks.bundle import submit
        from puyu_lab.checks.grade import grade

        from .checks import tamper

        failed = [r for r in chain.run_all() if not r.ok]
        if failed:
            pytest.skip(f"the chain failed at {failed[0].lab}")
        from puyu_lab.stages import stage_for_artifact
        from puyu_lab.workspace import Workspace

        self.ws = chain.snapshot  # the chain's workspace as the labs left it (later tests re-run labs on chain.ws)
        self.subs = root / "submissions"
        self.alice = submit(self.ws, self.subs / "alice.zip", learner="alice")
        # bob stopped after the pretraining lab: a copy of the chain's workspace up to model/base
        top = str(self.ws.root)
        shutil.copytree(self.ws.root, root / "bob", symlinks=True,
                        ignore=lambda d, names: [n for n in names if d == top and n in ("chain", "report")])
        bob = Workspace(root / "bob")
        for art in bob.list():
            if stage_for_artifact(art.name).key not in ("data", "pretrain"):
                bob.remove(art.name)
        self.bob = submit(bob, self.subs / "bob.zip", learner="bob")
        files = tamper.read(self.alice)
        tamper.replace_file(files, "model/sft", "model.safetensors",
                            (self.ws.get("model/base").path / "model.safetensors").read_bytes(), manifest_too=True)
        tamper.edit_manifest(files, "model/dpo", lambda m: m["metrics"].update(heldout_accuracy=0.95))
        d = tamper.info(files)
        d["learner"] = "mallory"
        tamper.put_info(files, d)
        self.mallory = tamper.write(files, root / "mallory.zip")
        self.mallory.rename(self.subs / "mallory.zip")
        self.mallory = self.subs / "mallory.zip"
        self.probes = root / "teacher-probes.json"
        self.probes.write_text(json.dumps(tamper.PROBES, ensure_ascii=False), encoding="utf-8")
        self.book = grade(self.subs, root / "gradebook", probes=self.probes)
        self.rows = {r.learner: r for r in self.book.rows}


@pytest.fixture(scope="session")
def grading(chain, tmp_path_factory) -> Grading:
    return Grading(chain, tmp_path_factory.mktemp("grading"))
