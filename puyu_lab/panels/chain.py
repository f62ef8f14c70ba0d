"""Static views for the tour: the chain map, the doctor's table, the profiles."""
from __future__ import annotations

from ..i18n import both, get_language, t
from ..profiles import PROFILES, cuda_available
from ..workspace import Workspace
from .base import HTMLView, heading, html_table


def chain_map(ws: Workspace) -> HTMLView:
    rows = ws.table()
    cols = ["stage", "lab", "artifact", "status", "figures"]
    text = "\n".join(f"{r['stage']:<28} {r['lab']:<20} {r['artifact']:<16} {t(r['status'])}" for r in rows)
    return HTMLView(heading("chain_map") + html_table(rows, cols, status_col="status"), text)


def doctor_view(report) -> HTMLView:
    """The doctor's checks as a table: each check's name as shown in the current language (``Check.shown``), its
    value, its status (ok / warn / fail, translated by the table) and its fix."""
    rows = [{"check": c.shown, "value": c.value, "status": c.status, "fix": c.fix} for c in report.checks]
    return HTMLView(f"<h4>{both('check')}</h4>" + html_table(rows, status_col="status"), report.text())


def profiles_view() -> HTMLView:
    """The profiles, each with whether it runs on this machine. No times: a profile's wall time is measured by
    ``make chain`` (its report's table), not typed here."""
    has_cuda = cuda_available()
    rows = [{
        "profile": p.name, "description": p.describe(get_language()), "device": p.device,
        "fits": t("yes") if (p.device == "cpu" or has_cuda) else t("no"),
    } for p in PROFILES.values()]
    text = "\n".join(f"{r['profile']:<6} {r['device']:<5} {r['fits']:<4} {r['description']}" for r in rows)
    return HTMLView(heading("profile") + html_table(rows, status_col=None), text)
