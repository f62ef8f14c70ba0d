from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


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


# ---- a tiny real chat model and its GGUF ladder (deploy and agent tests) -----------------------------
@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny real model (trained a few steps) with the chat template, saved as the stages save it."""
    from puyu_lab.data.pipeline import prepare
    from puyu_lab.workspace import Workspace
    from puyu_lab.data.sources import load_sources
    from puyu_lab.models.template import install_template
    from puyu_lab.pretrain.model import ModelPreset
    from puyu_lab.models.tokenizer import load_tokenizer, save_tokenizer
    from puyu_lab.pretrain.train import PretrainConfig, pretrain, train_tokenizer

    ws = Workspace(tmp_path_factory.mktemp("dep") / "ws")
    prepare(raw=load_sources(["news-zh", "reviews-zh"], limit_per_source=300, seed=3), show_progress=False).export(ws)
    train_tokenizer(ws, 3072)
    pretrain(ws, PretrainConfig(preset=ModelPreset(hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2,
                                                   intermediate_size=512, vocab_size=3072, block_size=64),
                                batch_size=4, max_steps=6, warmup_steps=1, eval_every=6, save_every=6, sample_every=0,
                                eval_blocks=4, progress_bar=False, bf16=False))
    d = tmp_path_factory.mktemp("chat") / "model"
    shutil.copytree(ws.get("model/base").path, d)
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
        return res

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
