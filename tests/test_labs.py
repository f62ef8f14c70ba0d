"""Every lab in labs/ runs top to bottom headless with the quick profile, in order.

Labs are discovered, not listed: a new notebook is executed here (and in CI) from the day it lands.
The labs share one workspace, as in ``make chain``, because each lab reads what the previous made
(the session-wide ``chain`` fixture of conftest.py, which the browser tests reuse).
"""
import json

import pytest

from puyu_lab.labrunner import discover

from .conftest import ROOT

LABS = discover(ROOT / "labs")
pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def test_labs_are_discovered():
    assert [p.name for p in LABS][:1] == ["00_tour.ipynb"]


@pytest.mark.parametrize("nb", LABS, ids=[p.stem for p in LABS])
def test_lab_runs(nb, chain):
    res = chain.run(nb)
    assert res.ok, res.error
    assert res.figures, f"{nb.name} should record its key figures (puyu_lab.labrunner.record_figures)"


def test_notebooks_are_committed_clean():
    for nb in LABS:
        data = json.loads(nb.read_text(encoding="utf-8"))
        for cell in data["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), f"{nb.name} has outputs"
        assert "widgets" not in data.get("metadata", {}), f"{nb.name} carries widget state"
        tags = [c.get("metadata", {}).get("tags", []) for c in data["cells"]]
        assert sum("parameters" in t for t in tags) == 1, f"{nb.name} needs one cell tagged 'parameters'"
