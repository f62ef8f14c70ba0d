"""``puyu-lab grade SUBMISSIONS/``: the teacher's side.

For each bundle (a zip written by ``puyu-lab submit``):

1. **Integrity** — each bundled file's sha256 equals the bundle's list *and* what the stage wrote into
   the artifact's manifest when it made it; no file added or removed since; each artifact's parents
   are the artifacts in the bundle (an artifact from another workspace breaks this lineage).
2. **Re-check** — the bundle is restored as a workspace and every artifact check runs again on it;
   a figure the manifest claims that the evidence (per-question files, the GGUF files) does not give
   is flagged as edited; a check the learner reported as passed that fails now is flagged. Checks
   whose evidence was too big to bundle keep the learner's reported result, marked as reported.
3. **Hidden probes** — with a teacher's probe file, fresh questions go to the bundled model.

The bundle is untrusted input: only the files its own list names are extracted, under names the
workspace accepts, with a size cap; the model is loaded from safetensors only, never with remote code.
Results go to ``gradebook.csv`` and ``gradebook.html`` (offline, plotly.js beside it).
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from ..workspace import MANIFEST, STORE, Workspace, _check_name
from .bundle import FORMAT

MAX_BUNDLE_BYTES = 1 << 30  # 1 GiB extracted, at most


@dataclass
class Row:
    bundle: str
    learner: str = ""
    created: str = ""
    environment: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)  # id → {"status", "figure", "source": "re-checked" | "reported", "lab"}
    probes: dict = field(default_factory=dict)  # group id → {"passed", "total", "rate", "ok", "rows"}
    flags: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(c["status"] == "pass" for c in self.checks.values())

    @property
    def verdict(self) -> str:
        if self.flags:
            return "flagged"
        return "ok" if all(c["status"] == "pass" for c in self.checks.values()) else "incomplete"


class BundleError(Exception):
    pass


def _safe_rel(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and "\\" not in rel and "\x00" not in rel


def _read_info(z: zipfile.ZipFile) -> dict:
    try:
        info = json.loads(z.read("bundle.json").decode("utf-8"))
    except KeyError:
        raise BundleError("no bundle.json: not a bundle written by `puyu-lab submit`") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(f"bundle.json is not valid JSON ({e})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise BundleError(f"bundle.json: format {info.get('format') if isinstance(info, dict) else None!r}, "
                          f"expected {FORMAT!r}")
    if not isinstance(info.get("artifacts"), dict):
        raise BundleError("bundle.json has no artifacts")
    return info


def restore(z: zipfile.ZipFile, info: dict, root: Path, flags: list[str]) -> Workspace:
    """Rebuild the bundle's artifacts as a workspace under ``root``, checking every file as it goes."""
    members = {i.filename: i for i in z.infolist()}
    total = sum(i.file_size for i in members.values())
    if total > MAX_BUNDLE_BYTES:
        raise BundleError(f"the bundle would extract to {total / 2**30:.1f} GiB (limit {MAX_BUNDLE_BYTES / 2**30:.0f})")
    listed = set()
    ws = Workspace(root)
    (root / STORE).mkdir(parents=True, exist_ok=True)
    for name, entry in info["artifacts"].items():
        try:
            _check_name(name)
        except Exception:
            flags.append(f"artifact name {name!r} is not a workspace name: skipped")
            continue
        manifest = entry.get("manifest") or {}
        files = entry.get("files") or {}
        mkey = f"artifacts/{name}/{MANIFEST}"
        listed.add(mkey)
        if mkey not in members:
            flags.append(f"{name}: its manifest is missing from the bundle")
            continue
        try:
            zman = json.loads(z.read(mkey).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            flags.append(f"{name}: its manifest is not JSON")
            continue
        if zman != manifest:
            flags.append(f"{name}: manifest.json differs from the copy in bundle.json (edited)")
        written = zman.get("files")
        if isinstance(written, dict):
            for rel in sorted(set(written) - set(files)):
                flags.append(f"{name}/{rel}: written by the stage, missing from the bundle's list")
            for rel in sorted(set(files) - set(written)):
                flags.append(f"{name}/{rel}: not written by the stage (added afterwards)")
        art_id = str(zman.get("id", ""))
        if not art_id.isalnum():
            flags.append(f"{name}: manifest id {art_id!r} is not an artifact id")
            continue
        target = root / STORE / f"{name.replace('/', '__')}.{art_id}"
        target.mkdir(parents=True, exist_ok=True)
        (target / MANIFEST).write_bytes(z.read(mkey))
        for rel, meta in files.items():
            if not _safe_rel(rel) or not isinstance(meta, dict):
                flags.append(f"{name}: unsafe file name {rel!r} refused")
                continue
            key = f"artifacts/{name}/{rel}"
            if not meta.get("included"):
                continue
            listed.add(key)
            if key not in members:
                flags.append(f"{name}/{rel}: listed as included, missing from the zip")
                continue
            data = z.read(key)
            digest = hashlib.sha256(data).hexdigest()
            if digest != meta.get("sha256"):
                flags.append(f"{name}/{rel}: content differs from the bundle's list (changed after submitting)")
            elif isinstance(written, dict) and rel in written and written[rel].get("sha256") != digest:
                flags.append(f"{name}/{rel}: differs from what the {zman.get('stage', '?')} stage wrote (swapped)")
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        link = root / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(target, link.parent), link)
    extra = sorted(k for k in members if k != "bundle.json" and k not in listed and not k.endswith("/"))
    for k in extra[:5]:
        flags.append(f"{k}: in the zip but not in the bundle's list (ignored)")
    # lineage: each artifact was made from the artifacts the bundle holds under its parents' names
    for name, entry in info["artifacts"].items():
        for par in (entry.get("manifest") or {}).get("parents", []):
            other = info["artifacts"].get(par.get("name"))
            if other is not None and (other.get("manifest") or {}).get("id") != par.get("id"):
                flags.append(f"{name} was made from {par.get('name')} {par.get('id')}, the bundle's is "
                             f"{(other.get('manifest') or {}).get('id')} (from another run or workspace)")
    return ws


def _assistant_name(ws: Workspace) -> str | None:
    try:
        return ws.get("sft/data").metrics.get("assistant_name")
    except Exception:
        return None


def run_probes(ws: Workspace, info: dict, groups, flags: list[str]) -> dict:
    from ..models import load_model
    from .probes import run_group

    out = {}
    models: dict = {}
    name = _assistant_name(ws)
    try:
        for g in groups:
            if g.model not in models:
                if not ws.exists(g.model):
                    models[g.model] = None
                else:
                    d = ws.get(g.model).path
                    if not (d / "model.safetensors").is_file() or any(d.glob("*.bin")):
                        flags.append(f"{g.model}: probes run only on a bundled safetensors model (no pickled weights)")
                        models[g.model] = None
                    else:
                        models[g.model] = load_model(d)
            model = models[g.model]
            if model is None:
                out[g.id] = {"passed": 0, "total": len(g.items), "rate": 0.0, "ok": False, "rows": [],
                             "note": f"{g.model} not in the bundle (submit with the model)"}
                flags.append(f"probes {g.id}: no {g.model} in the bundle to ask")
                continue
            r = run_group(model, g, assistant_name=name)
            out[g.id] = {"passed": r.passed, "total": r.total, "rate": round(r.rate, 4), "ok": r.ok,
                         "min_pass": g.min_pass, "rows": r.rows}
            if not r.ok:
                flags.append(f"hidden probes {g.id}: {r.passed}/{r.total} ({r.rate:.0%}) below {g.min_pass:.0%}")
    finally:
        for m in models.values():
            if m is not None:
                m.close()
    return out


def grade_one(path: Path, groups=None, *, work: Path | None = None) -> Row:
    from . import run

    row = Row(bundle=path.name)
    tmp = Path(tempfile.mkdtemp(prefix="puyu-grade-", dir=work))
    try:
        try:
            z = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            row.flags.append(f"not a readable zip ({e})")
            return row
        with z:
            try:
                info = _read_info(z)
                row.learner = str(info.get("learner", ""))
                row.created = str(info.get("created", ""))
                row.environment = info.get("environment") or {}
                ws = restore(z, info, tmp / "ws", row.flags)
            except BundleError as e:
                row.flags.append(str(e))
                return row
        reported = {r["id"]: r for r in (info.get("report") or {}).get("results", []) if isinstance(r, dict)}
        card = run(ws, scope="artifact")
        for r in card.results:
            rep = reported.get(r.id)
            if r.status in ("pass", "fail"):
                row.checks[r.id] = {"status": r.status, "figure": r.figure, "source": "re-checked", "lab": r.lab}
                if rep and rep.get("ok") and not r.ok:
                    row.flags.append(f"{r.id}: reported passed ({rep.get('figure')}), fails when re-checked ({r.figure})")
                if not r.consistent:
                    row.flags.append(f"{r.id}: the manifest claims {r.claimed:g}, its evidence gives {r.value:g} (metric edited)")
            else:  # evidence not in the bundle: the learner's own result, as reported
                status = "pass" if rep and rep.get("ok") else "fail"
                row.checks[r.id] = {"status": status, "figure": (rep or {}).get("figure", r.figure),
                                    "source": "reported" if rep else "missing", "lab": r.lab}
        for rid, rep in reported.items():
            if rid not in row.checks and rep.get("scope") == "machine":
                row.checks[rid] = {"status": "pass" if rep.get("ok") else "fail", "figure": rep.get("figure", ""),
                                   "source": "reported", "lab": rep.get("lab", "")}
        if groups:
            row.probes = run_probes(ws, info, groups, row.flags)
        return row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Gradebook:
    rows: list[Row]
    csv_path: Path
    html_path: Path


def grade(submissions, out: str | os.PathLike | None = None, *, probes: str | os.PathLike | None = None,
          on_progress: Callable[[str], None] | None = None) -> Gradebook:
    """Grade every ``*.zip`` under ``submissions`` and write the gradebook to ``out`` (default: the folder)."""
    from ..errors import InputError
    from .probes import load_probes

    say = on_progress or (lambda s: None)
    folder = Path(submissions)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; put the learners' submission-*.zip files in one folder")
    bundles = sorted(folder.glob("*.zip"))
    if not bundles:
        raise InputError(f"{folder}: no .zip bundles in it (learners make them with `puyu-lab submit`)")
    groups = load_probes(probes) if probes else None
    out_dir = Path(out) if out else folder
    rows = []
    for i, b in enumerate(bundles, 1):
        say(f"[{i}/{len(bundles)}] {b.name}")
        row = grade_one(b, groups)
        rows.append(row)
        say(f"    {row.learner or '?'}: {row.passed}/{len(row.checks)} checks, {row.verdict}"
            + "".join(f"\n    ! {f}" for f in row.flags))
    return write_gradebook(rows, out_dir)


def _columns(rows: list[Row]) -> tuple[list[str], list[str]]:
    check_ids: list[str] = []
    probe_ids: list[str] = []
    for r in rows:
        for cid in sorted(r.checks, key=lambda c: (r.checks[c]["lab"], c)):
            if cid not in check_ids:
                check_ids.append(cid)
        for gid in r.probes:
            if gid not in probe_ids:
                probe_ids.append(gid)
    return check_ids, probe_ids


def write_gradebook(rows: list[Row], out_dir: Path) -> Gradebook:
    from .report import STYLE, page, write_atomic
    from ..labrunner import _ship_plotly
    from ..panels.snapshot import PLOTLY_JS, plotly_div

    out_dir.mkdir(parents=True, exist_ok=True)
    check_ids, probe_ids = _columns(rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["learner", "bundle", "verdict", "checks_passed", "checks_total", *check_ids,
                *[f"probe:{g}" for g in probe_ids], "flags"])
    for r in rows:
        w.writerow([r.learner, r.bundle, r.verdict, r.passed, len(r.checks),
                    *[(r.checks.get(c) or {}).get("status", "") for c in check_ids],
                    *[f"{r.probes[g]['passed']}/{r.probes[g]['total']}" if g in r.probes else "" for g in probe_ids],
                    " | ".join(r.flags)])
    csv_path = out_dir / "gradebook.csv"
    write_atomic(csv_path, buf.getvalue())

    esc = lambda s: html.escape(str(s))  # noqa: E731
    head = "".join(f"<th title='{esc(c)}'>{esc(c.split('.', 1)[-1])}</th>" for c in check_ids)
    head += "".join(f"<th>probe: {esc(g)}</th>" for g in probe_ids)
    body = []
    for r in rows:
        cells = []
        for c in check_ids:
            st = r.checks.get(c)
            if st is None:
                cells.append("<td class='dim'>–</td>")
            else:
                mark = "✓" if st["status"] == "pass" else "✗"
                cls = "pass" if st["status"] == "pass" else "fail"
                rep = "*" if st["source"] != "re-checked" else ""
                cells.append(f"<td class='{cls}' title='{esc(st['figure'])}'>{mark}{rep}</td>")
        for g in probe_ids:
            p = r.probes.get(g)
            cells.append(f"<td class='{'pass' if p and p['ok'] else 'fail'}'>{p['passed']}/{p['total']}</td>" if p
                         else "<td class='dim'>–</td>")
        body.append(f"<tr data-learner='{esc(r.learner)}' data-verdict='{r.verdict}'><td>{esc(r.learner)}</td>"
                    f"<td class='{ {'ok': 'pass', 'flagged': 'fail'}.get(r.verdict, 'warn') }'>{r.verdict}</td>"
                    f"<td>{r.passed}/{len(r.checks)}</td>{''.join(cells)}<td>{len(r.flags)}</td></tr>")
    table = (f"<table class='puyu-card gradebook'><tr><th>learner</th><th>verdict</th><th>checks</th>{head}"
             f"<th>flags</th></tr>{''.join(body)}</table><p class='dim'>* as the learner reported it (evidence "
             "too big to bundle); ✓/✗ without a star were re-checked on the bundle</p>")
    details = []
    for r in rows:
        checks = "".join(f"<tr><td>{'✓' if v['status'] == 'pass' else '✗'}</td><td><code>{esc(k)}</code></td>"
                         f"<td>{esc(v['figure'])}</td><td class='dim'>{esc(v['source'])}</td></tr>"
                         for k, v in sorted(r.checks.items(), key=lambda kv: (kv[1]["lab"], kv[0])))
        probes = ""
        for g, p in r.probes.items():
            items = "".join(f"<li class='{'pass' if x['ok'] else 'fail'}'>{esc(x['prompt'])} → "
                            f"<span class='dim'>{esc(x['reply'][:120])}</span></li>" for x in p.get("rows", []))
            probes += f"<h4>probe {esc(g)}: {p['passed']}/{p['total']}</h4><ul>{items}</ul>"
        flags = "".join(f"<li class='fail'>{esc(f)}</li>" for f in r.flags) or "<li class='pass'>none</li>"
        envs = esc(", ".join(f"{k}={v}" for k, v in r.environment.items() if k != "packages"))
        details.append(f"<details class='learner' data-learner='{esc(r.learner)}'><summary><b>{esc(r.learner)}</b> — "
                       f"{r.verdict}, {r.passed}/{len(r.checks)} checks ({esc(r.bundle)}, {esc(r.created)})</summary>"
                       f"<p class='dim'>{envs}</p><h4>flags</h4><ul>{flags}</ul>"
                       f"<table class='puyu-card'>{checks}</table>{probes}</details>")
    fig = _heatmap(rows, check_ids, probe_ids)
    html_body = (f"<h1>书生·浦语 puyu-lab — 成绩册 Gradebook</h1><p>{len(rows)} bundle(s)</p>{STYLE}"
                 f"{plotly_div(fig, 120 + 28 * len(rows))}{table}<h2>每位学员 Per learner</h2>{''.join(details)}")
    _ship_plotly(out_dir / PLOTLY_JS)
    html_path = out_dir / "gradebook.html"
    write_atomic(html_path, page("puyu-lab gradebook", html_body, True))
    return Gradebook(rows, csv_path, html_path)


def _heatmap(rows: list[Row], check_ids: list[str], probe_ids: list[str]) -> dict:
    """Learners × checks (1 passed, 0 failed), probe groups as their pass rate: one glance per class."""
    import plotly.graph_objects as go

    cols = check_ids + [f"probe:{g}" for g in probe_ids]
    z, text = [], []
    for r in rows:
        zr, tr = [], []
        for c in check_ids:
            st = r.checks.get(c)
            zr.append(None if st is None else float(st["status"] == "pass"))
            tr.append("" if st is None else st["figure"])
        for g in probe_ids:
            p = r.probes.get(g)
            zr.append(None if p is None else p["rate"])
            tr.append("" if p is None else f"{p['passed']}/{p['total']}")
        z.append(zr)
        text.append(tr)
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=[r.learner or r.bundle for r in rows], text=text, zmin=0, zmax=1,
                               colorscale=[[0, "#c5221f"], [0.5, "#fbbc04"], [1, "#1e8e3e"]], showscale=False,
                               hovertemplate="%{y} · %{x}<br>%{text}<extra></extra>"))
    fig.update_layout(height=120 + 28 * len(rows), margin=dict(l=120, r=10, t=20, b=100),
                      title="学员 × 自检 Learners × checks")
    return fig.to_plotly_json()
