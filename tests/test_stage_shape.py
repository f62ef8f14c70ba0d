"""One shape per stage: ``config.py`` with a dataclass sized by ``for_profile``, one
``run(ws, cfg, *, on_event, stop)`` entry point, ``puyu-lab <stage>`` verbs, and labs that take their
sizes from the config instead of choosing them by profile themselves."""
import dataclasses
import importlib
import importlib.util
import inspect
import json
import re
import subprocess
import sys

import pytest

from puyu_lab.stages import STAGES

from .conftest import ROOT

KEYS = [s.key for s in STAGES]


def test_the_nine_stages():
    assert KEYS == ["data", "pretrain", "finetune", "preference", "rl", "deploy", "eval", "agent", "rag"]


def config_class(stage: str):
    assert importlib.util.find_spec(f"puyu_lab.{stage}.config"), f"puyu_lab/{stage}/config.py is missing"
    mod = importlib.import_module(f"puyu_lab.{stage}.config")
    found = [c for c in vars(mod).values() if inspect.isclass(c) and dataclasses.is_dataclass(c)
             and c.__module__ == mod.__name__ and hasattr(c, "for_profile")]
    assert len(found) == 1, f"puyu_lab/{stage}/config.py should hold one config dataclass with for_profile: {found}"
    return found[0]


@pytest.mark.parametrize("stage", KEYS)
def test_config_is_sized_by_profile(stage):
    cls = config_class(stage)
    quick, full = cls.for_profile("quick"), cls.for_profile("full")
    assert isinstance(quick, cls) and isinstance(full, cls)
    assert dataclasses.asdict(quick) != dataclasses.asdict(full), f"{cls.__name__}: quick and full have the same sizes"
    assert cls.for_profile(None) == cls.for_profile("quick")  # the default profile
    from puyu_lab.profiles import get_profile

    assert cls.for_profile(get_profile("full")) == full  # a Profile works like its name
    pkg = importlib.import_module(f"puyu_lab.{stage}")
    assert getattr(pkg, cls.__name__) is cls  # exported by the stage package


class Bound(Exception):
    pass


class ProbeWorkspace:
    """A workspace whose ``for_stage`` stops the run at once, saying which stage's view it asked for."""

    def for_stage(self, key):
        raise Bound(key)


def binds_its_view(run) -> str | None:
    try:
        run(ProbeWorkspace())
    except Bound as exc:
        return exc.args[0]
    return None


@pytest.mark.parametrize("stage", KEYS)
def test_one_run_entry_point(stage):
    run = importlib.import_module(f"puyu_lab.{stage}").run
    assert callable(run)
    assert binds_its_view(run) == stage, "run reads through ws.for_stage(<its key>) (its reads are checked)"
    params = inspect.signature(run).parameters
    assert list(params)[:2] == ["ws", "cfg"] and params["cfg"].default is None
    for kw in ("on_event", "stop"):
        assert params[kw].kind is inspect.Parameter.KEYWORD_ONLY and params[kw].default is None


def test_every_stage_has_cli_verbs():
    for stage in KEYS:
        for argv in ([stage, "--help"], [stage, "run", "--help"]):
            out = subprocess.run([sys.executable, "-m", "puyu_lab", *argv], capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, (argv, out.stderr[-2000:])
            assert "usage: puyu-lab " + stage in out.stdout
            if argv[-2] == "run":
                assert "--profile" in out.stdout and "--home" in out.stdout


def test_cli_says_a_missing_input_in_one_line(tmp_path):
    for stage in ("deploy", "eval", "agent"):
        out = subprocess.run([sys.executable, "-m", "puyu_lab", stage, "run", "--home", str(tmp_path / "ws")],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, (stage, out.stderr[-2000:])
        assert out.stderr.startswith("error: artifact ") and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


# a lab that picks a size from the profile's name or data section (the stage's config does that)
BY_PROFILE = re.compile(r"\bprof(ile)?\.(name|data)\b\s*(==|!=|in\b)|\bif\s+prof(ile)?\b|\bprof(ile)?\.data\.")


def test_labs_choose_no_sizes_by_profile():
    offenders = []
    for nb in sorted((ROOT / "labs").glob("0*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "code" and BY_PROFILE.search("".join(cell["source"])):
                offenders.append(f"{nb.name} cell {i}")
    assert not offenders, offenders
    assert not BY_PROFILE.search('cfg = EvalConfig.for_profile(prof, levels=levels)\nprint(prof.name)')
    assert BY_PROFILE.search('n = 40 if prof.name == "quick" else 200')
