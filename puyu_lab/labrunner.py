"""Run the labs headless, in order, and report: what ``make chain`` and the notebook tests use.

Each lab is executed with papermill (its ``parameters`` cell receives ``profile``), its executed
copy and an HTML rendering are saved under ``<workspace>/chain/``, and ``report.html`` there
sums up the run: one row per lab with its wall time and key figures. A lab records its key
figures with :func:`record_figures`. The HTML opens offline: the kernel snapshots its live widgets
after each cell (:mod:`puyu_lab.panels.snapshot`, switched on by ``$PUYU_LAB_SNAPSHOTS``) and each
widget output is replaced by its snapshot; plotly figures are drawn by a local ``plotly.min.js``.
"""
from __future__ import annotations

import html
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import MissingInput, Msg, PuyuError, zh_of
from .events import Emitter, Event
from .htmlassets import ship_plotly
from .i18n import get_language, tr
from .paths import project_root
from .workspace import Workspace

FIGURES_ENV = "PUYU_LAB_FIGURES"
LAB_RE = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")


def labs_folder() -> Path:
    """The ``labs/`` folder of the checkout (see :func:`puyu_lab.paths.project_root`)."""
    root = project_root()
    if root is None:
        raise MissingInput("cannot find the labs/ folder: run from the puyu-lab checkout",
                           zh="找不到 labs/ 文件夹：请在 puyu-lab 的代码目录里运行")
    return root / "labs"


def discover(labs_dir: Path | None = None) -> list[Path]:
    """Every lab notebook (``NN_name.ipynb``) in order. New labs are picked up automatically."""
    labs_dir = labs_dir or labs_folder()
    return sorted(p for p in labs_dir.glob("*.ipynb") if LAB_RE.match(p.name))


def record_figures(**figures: Any) -> dict[str, Any]:
    """Called by a lab's last cell: its key figures, for the chain's summary line and report."""
    path = os.environ.get(FIGURES_ENV)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(figures, ensure_ascii=False, default=str, indent=1), encoding="utf-8")
    return figures


@dataclass
class LabResult:
    lab: str
    ok: bool
    seconds: float
    figures: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # English; a Msg, whose .zh is the Chinese
    executed: Path | None = None

    def line(self) -> str:
        """The chain's one line for this lab, in the current language."""
        figs = ", ".join(f"{k}={_short(v)}" for k, v in self.figures.items())
        state = (tr("通过", "ok  ") if self.ok else tr("失败", "FAIL"))
        return f"{state} {self.lab:<22} {self.seconds:7.1f}s  {figs if self.ok else self.error_in()}"

    def error_in(self) -> str:
        """Why the lab failed, in the current language."""
        return zh_of(self.error) if get_language() == "zh" else str(self.error)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class ChainError(PuyuError, RuntimeError):
    """The chain cannot start as asked (no lab matches ``--only``)."""


HOMEWORK_TAG = "homework"  # a 作业 cell's tag: the learner runs it; the headless chain leaves it out
HOMEWORK_ENV = "PUYU_LAB_HOMEWORK"  # "1": the chain runs the homework cells too


def without_homework(nb: Path, out_dir: Path) -> Path:
    """``nb`` without its cells tagged ``homework`` (the learner's 作业: their starter code trains or measures for
    minutes, outside the chain's time budget), written beside the executed copy; ``nb`` itself when it has none."""
    import nbformat

    doc = nbformat.read(nb, as_version=4)
    kept = [c for c in doc.cells if HOMEWORK_TAG not in c.get("metadata", {}).get("tags", [])]
    if len(kept) == len(doc.cells):
        return nb
    doc.cells = kept
    src = out_dir / f".{nb.stem}.input.ipynb"
    tmp = src.with_name(src.name + ".partial")
    nbformat.write(doc, tmp)
    os.replace(tmp, src)
    return src


def run_lab(nb: Path, out_dir: Path, *, profile: str, workspace: Workspace,
            parameters: dict[str, Any] | None = None, timeout: int = 1800,
            homework: bool | None = None) -> LabResult:
    """Run ``nb`` headless on ``workspace``. ``homework`` (default ``$PUYU_LAB_HOMEWORK`` == "1"): run its cells
    tagged ``homework`` too."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / nb.name
    if homework is None:
        homework = os.environ.get(HOMEWORK_ENV, "") == "1"
    source = nb if homework else without_homework(nb, out_dir)
    figures_path = out_dir / f"{nb.stem}.figures.json"
    figures_path.unlink(missing_ok=True)
    snapshots = out_dir / f"{nb.stem}.widgets.json"
    snapshots.unlink(missing_ok=True)
    env_before = {k: os.environ.get(k) for k in ("PUYU_LAB_HOME", FIGURES_ENV, "PUYU_LAB_PROFILE", SNAPSHOTS_ENV)}
    os.environ["PUYU_LAB_HOME"] = str(workspace.root.resolve())
    os.environ[FIGURES_ENV] = str(figures_path.resolve())
    os.environ[SNAPSHOTS_ENV] = str(snapshots.resolve())
    os.environ["PUYU_LAB_PROFILE"] = profile
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(source), str(executed), parameters={"profile": profile, **(parameters or {})},
            kernel_name="python3", cwd=str(nb.parent), progress_bar=False, log_output=False,
            execution_timeout=timeout,
        )
        ok, error = True, ""
    except pm.PapermillExecutionError as exc:
        ok = False
        evalue = str(exc.evalue)[:500]
        error = Msg(f"cell {exc.cell_index} (execution count {exc.exec_count}): {exc.ename}: {evalue} — "
                    f"executed copy: {executed}",
                    f"第 {exc.cell_index} 个单元格（执行序号 {exc.exec_count}）出错：{exc.ename}: {evalue} —— "
                    f"执行后的副本：{executed}")
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    if source != nb:
        source.unlink(missing_ok=True)
    figures = json.loads(figures_path.read_text(encoding="utf-8")) if figures_path.exists() else {}
    _to_html(executed, snapshots)
    snapshots.unlink(missing_ok=True)
    return LabResult(nb.name, ok, seconds, figures, error, executed)


SNAPSHOTS_ENV = "PUYU_LAB_SNAPSHOTS"  # puyu_lab.panels.snapshot.ENV
_EXTERNAL = re.compile(r"""<script[^>]*\ssrc=["']https?://[^"']*["'][^>]*>\s*</script>|"""
                       r"""<link[^>]*\shref=["']https?://[^"']*["'][^>]*>""", re.I)


def offline_notebook(nb, snapshots: dict[str, str]):
    """A copy of an executed notebook that renders without a network: each widget output replaced by
    its snapshot (the widget as it ended, from :mod:`puyu_lab.panels.snapshot`), each plotly figure by a
    div that the local plotly.js draws, the widget state dropped (it only feeds the CDN widget manager)."""
    import copy

    from .panels.snapshot import output_html

    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            view = data.get("application/vnd.jupyter.widget-view+json")
            if view is not None:
                snap = snapshots.get(view.get("model_id"))
                if snap is None:  # a live widget is never dropped (ipywidgets holds it) until it is closed,
                    # and a closed widget shows nothing in JupyterLab either (a finished progress bar)
                    snap = "" if snapshots else "<div class='dim'>" + tr(
                        "（交互控件：请在 JupyterLab 中打开这个笔记本）",
                        "(an interactive widget: open the notebook in JupyterLab)") + "</div>"
                out["data"] = {"text/html": snap}
            elif "application/vnd.plotly.v1+json" in data:
                out["data"] = {"text/html": output_html(out)}
    return nb


def _to_html(executed: Path, snapshots: Path | None = None) -> None:
    """The executed lab as HTML that opens offline: panels as they ended, plotly figures drawn by
    ``plotly.min.js`` next to the page (copied from the installed plotly), no CDN script."""
    if not executed.exists():
        return
    try:
        import nbformat
        from nbconvert import HTMLExporter

        from .panels.snapshot import PLOT_SCRIPT, PLOTLY_JS

        snaps = json.loads(snapshots.read_text(encoding="utf-8")) if snapshots and snapshots.exists() else {}
        nb = offline_notebook(nbformat.read(str(executed), as_version=4), snaps)
        body, _ = HTMLExporter().from_notebook_node(nb)
        body = _EXTERNAL.sub("", body)
        if "puyu-plot" in body:
            ship_plotly(executed.parent / PLOTLY_JS)
            body = body.replace("</head>", f"<script src='{PLOTLY_JS}'></script>{PLOT_SCRIPT}</head>", 1)
        out = executed.with_suffix(".html")
        tmp = out.with_name(out.name + ".partial")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, out)
    except Exception as exc:  # the report is a convenience; never hide the lab's own result
        said = tr("无法生成 HTML：", "could not render: ")
        executed.with_suffix(".html").write_text(f"<pre>{said}{html.escape(str(exc))}</pre>", encoding="utf-8")


def numeric_path() -> str:
    """The precision the labs' training runs in on this machine, and why (puyu_lab.numerics), in the current
    language."""
    try:
        from .doctor import numerics_zh
        from .numerics import choose

        path = choose()
        return tr(f"{path.dtype}（{numerics_zh(path)}）", path.summary())
    except Exception as exc:  # torch missing: the labs say so themselves
        return tr(f"未知（{exc}）", f"unknown ({exc})")


def write_report(results: list[LabResult], out_dir: Path, profile: str, numerics: str | None = None,
                 workspace: Workspace | None = None) -> Path:
    """``report.html``: each lab's status, time, key figures and self-checks passed, the report card's
    figure, and links to the lab pages; the report card itself goes to ``<workspace>/report/``."""
    card = None
    try:  # the checks read the workspace the chain wrote (out_dir is its chain/ folder)
        from .checks import run as run_checks
        from .checks.report import write_report as write_card

        ws = workspace or Workspace(out_dir.parent)
        card = run_checks(ws)
        write_card(card, ws.root / "report")
    except Exception as exc:  # the chain's own result comes first
        card_error = f"{type(exc).__name__}: {exc}"
    by_lab = card.by_lab() if card else {}
    rows = []
    for r in results:
        figs = "<br>".join(f"{html.escape(k)} = {html.escape(_short(v))}" for k, v in r.figures.items())
        link = f'<a href="{html.escape(r.lab[:-6])}.html">{html.escape(r.lab)}</a>'
        status = (f'<b style="color:#1e8e3e">{tr("通过", "ok")}</b>' if r.ok else
                  f'<b style="color:#c5221f">{tr("失败", "failed")}</b><br>{html.escape(r.error_in())}')
        p, t = by_lab.get(r.lab, (0, 0))
        checks = f'<b style="color:{"#1e8e3e" if p == t else "#c5221f"}">{p}/{t}</b>' if t else "–"
        rows.append(f"<tr data-lab='{html.escape(r.lab)}'><td>{link}</td><td>{status}</td><td>{r.seconds:.1f}</td>"
                    f"<td class='checks'>{checks}</td><td>{figs}</td></tr>")
    total = sum(r.seconds for r in results)
    plot, scripts = "", ""
    if card is not None:
        from .checks.report import labs_figure
        from .panels.snapshot import PLOT_SCRIPT, PLOTLY_JS, plotly_div

        ship_plotly(out_dir / PLOTLY_JS)
        scripts = f"<script src='{PLOTLY_JS}'></script>{PLOT_SCRIPT}"
        card_link = f"<a href='../report/index.html'>{tr('成绩单', 'report card')}</a>"
        plot = ("<p>" + tr(f"自检：<b>{card.passed}/{card.total}</b> 项通过 —— 每项的数字和提示见{card_link}",
                           f"self-checks: <b>{card.passed}/{card.total}</b> passed — {card_link} "
                           "(each check, its figure and hint)") + f"</p>{plotly_div(labs_figure(card), 260)}")
    else:
        plot = "<p>" + tr("自检没能运行：", "self-checks could not run: ") + f"{html.escape(card_error)}</p>"
    when = time.strftime('%Y-%m-%d %H:%M:%S')
    said = tr(f"配置档 <b>{html.escape(profile)}</b>，{len(results)} 个实验，共 {total:.1f} 秒，{when}",
              f"profile <b>{html.escape(profile)}</b>, {len(results)} lab(s), {total:.1f} s in all, {when}")
    head = "".join(f"<th>{h}</th>" for h in (tr("实验", "Lab"), tr("状态", "Status"), tr("用时（秒）", "Wall time (s)"),
                                            tr("自检", "Checks"), tr("关键指标", "Key figures")))
    page = f"""<!doctype html><meta charset="utf-8"><title>{tr("puyu-lab 全链路报告", "puyu-lab chain report")}</title>{scripts}
<style>body{{font-family:sans-serif;margin:2em}} td,th{{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}}</style>
<h1>书生·浦语 puyu-lab — {tr("全链路报告", "chain report")}</h1>
<p>{said}</p>
<p>{tr("数值精度：", "numeric path: ")}{html.escape(numerics or numeric_path())}</p>{plot}
<table><tr>{head}</tr>{''.join(rows)}</table>"""
    path = out_dir / "report.html"
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


def run_chain(*, profile: str = "quick", workspace: Workspace | None = None, labs_dir: Path | None = None,
              only: list[str] | None = None, on_event: Callable[[Event], None] | None = None) -> list[LabResult]:
    """Run every lab in order; stop at the first failure (later labs need its artifact)."""
    ws = workspace or Workspace()
    out_dir = ws.root / "chain"
    em = Emitter("chain", on_event)
    labs = discover(labs_dir)
    if only:
        labs = [nb for nb in labs if any(nb.stem.startswith(o) or nb.name == o for o in only)]
        if not labs:
            raise ChainError(f"no lab matches {only}; labs are: {[p.name for p in discover(labs_dir)]}",
                             zh=f"没有与 {only} 对应的实验；现有的实验：{[p.name for p in discover(labs_dir)]}")
    results: list[LabResult] = []
    numerics = numeric_path()
    em.emit("numerics", summary=numerics)
    for nb in labs:
        em.emit("start", lab=nb.name)
        res = run_lab(nb, out_dir, profile=profile, workspace=ws)
        results.append(res)
        em.emit("done", lab=nb.name, ok=res.ok, line=res.line())
        if not res.ok:
            break
    write_report(results, out_dir, profile, numerics, ws)
    return results
