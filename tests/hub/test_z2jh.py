"""Beyond one server: hub/values.yaml (Zero to JupyterHub) and hub/Dockerfile (its image). Neither can run here (no
Kubernetes, no container engine), so this checks what can be checked: the values load against the chart's schema
(a subset written for the test — see z2jh_values_subset.schema.yaml for why), the teacher's hook in them compiles
and mounts the hand-ins for the teacher only, and the image is built by the same `make setup` as one server, into
the folders the values point at."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT

HUB = ROOT / "hub"
SCHEMA = Path(__file__).with_name("z2jh_values_subset.schema.yaml")


def values() -> dict:
    return yaml.safe_load((HUB / "values.yaml").read_text(encoding="utf-8"))


def test_values_load_against_the_chart_schema():
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(values(), schema, cls=jsonschema.Draft7Validator)
    # the schema bites: a misplaced key and a wrong type are refused, as helm would refuse them
    bad = values()
    bad["singleuser"]["memLimit"] = "4G"
    with pytest.raises(jsonschema.ValidationError, match="memLimit"):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft7Validator)
    bad = values()
    bad["singleuser"]["cpu"]["limit"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft7Validator)


def test_the_teacher_hook_mounts_every_hand_in_for_the_teacher_only():
    from types import SimpleNamespace

    from traitlets.config import Config

    c = Config()
    for code in values()["hub"]["extraConfig"].values():
        exec(compile(code, "hub.extraConfig", "exec"), {"c": c})
    hook = c.KubeSpawner.pre_spawn_hook
    for admin in (True, False):
        sp = SimpleNamespace(user=SimpleNamespace(admin=admin), volumes=[], volume_mounts=[])
        hook(sp)
        assert bool(sp.volume_mounts) == admin
        assert all(m["readOnly"] for m in sp.volume_mounts)


def test_the_image_is_built_by_make_setup_into_the_folders_the_values_use():
    docker = (HUB / "Dockerfile").read_text(encoding="utf-8")
    lines = [ln for ln in re.sub(r"\\\n", " ", docker).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    keywords = {"FROM", "RUN", "COPY", "ADD", "WORKDIR", "ENV", "USER", "EXPOSE", "CMD", "ENTRYPOINT", "ARG", "LABEL"}
    assert all(ln.split()[0] in keywords for ln in lines), lines
    assert lines[0].startswith("FROM ")
    runs = [ln for ln in lines if ln.startswith("RUN ")]
    assert any(re.search(r"\bmake setup\b", r) for r in runs), runs
    assert "COPY . /opt/puyu-lab" in docker and "/opt/puyu-lab/.venv/bin" in docker
    v = values()["singleuser"]
    home = v["storage"]["homeMountPath"]
    assert v["extraEnv"]["PUYU_LAB_HOME"].startswith(home + "/")
    assert "/opt/puyu-lab/labs" in " ".join(v["lifecycleHooks"]["postStart"]["exec"]["command"])
    assert v["cmd"] == "jupyterhub-singleuser" and 'CMD ["jupyterhub-singleuser"]' in docker
    assert any(m["mountPath"] == v["extraEnv"]["PUYU_LAB_HOME"] + "/report" for m in v["storage"]["extraVolumeMounts"])
    # and `make setup` is the recipe that installs what a hub needs: the proxy from npm beside the venv
    dry = subprocess.run(["make", "-n", "-B", "setup"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    from puyu_lab.hub.config import CHP_VERSION

    assert f"configurable-http-proxy@{CHP_VERSION}" in dry.stdout and "pip install" in dry.stdout
