"""Static snapshots of live widgets, for reports that open offline.

A lab's panels are ipywidgets (plotly ``FigureWidget`` s among them). Rendered to HTML by nbconvert,
they need the widget manager and require.js from a CDN, and a ``FigureWidget`` 's saved state holds
only the traces it was built with — offline, or after traces were added, they come out blank. Here
each live widget is rendered from its Python-side state, which is the truth: HTML widgets by their
value, boxes and tabs by their children, a figure by ``fig.to_plotly_json()`` (drawn by plotly.js,
which the report ships as a local file), controls as what they show (a label and its value).

No maintained library renders a live ipywidgets tree to static HTML (ipywidgets' own
``embed_minimal_html`` needs the same CDN manager), hence this walk.

When ``$PUYU_LAB_SNAPSHOTS`` names a file (``make chain`` does), :func:`install` registers an
IPython hook that writes ``{model_id: html}`` for every live widget after each cell; the lab runner
replaces each widget output of the executed notebook by its snapshot when it renders the report.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

ENV = "PUYU_LAB_SNAPSHOTS"
PLOTLY_JS = "plotly.min.js"  # shipped next to the reports (plotly's own bundle)


def _js_json(obj) -> str:
    """Figure JSON as plotly encodes it (NaN and inf → null, numpy arrays → lists), safe in HTML."""
    from plotly.io.json import to_json_plotly

    return to_json_plotly(obj).replace("</", "<\\/")


def plotly_div(fig_json: dict, height: int | None = None) -> str:
    """A plotly figure (``{"data": …, "layout": …}``) drawn by plotly.js when the page loads."""
    layout = dict(fig_json.get("layout") or {})
    layout.pop("template", None)  # plotly.js falls back to its defaults; the template is most of the bytes
    h = height or layout.get("height") or 360
    return (f"<div class='puyu-plot' style='min-height:{int(h)}px' data-figure='{html.escape(_js_json({'data': fig_json.get('data') or [], 'layout': layout}), quote=True)}'></div>")


PLOT_SCRIPT = """<script>
document.addEventListener('DOMContentLoaded', () => {
  for (const el of document.querySelectorAll('.puyu-plot[data-figure]')) {
    if (typeof Plotly === 'undefined') { el.textContent = '(plotly.js is missing next to this page)'; continue; }
    try {
      const f = JSON.parse(el.dataset.figure);
      Plotly.newPlot(el, f.data, f.layout, {responsive: true, displaylogo: false});
    } catch (e) { el.textContent = '(this figure could not be drawn: ' + e + ')'; }
  }
});
</script>"""


def output_html(out: dict) -> str:
    """One notebook output (``nbformat`` dict) as HTML."""
    kind = out.get("output_type")
    if kind == "stream":
        return f"<pre>{html.escape(out.get('text', ''))}</pre>"
    if kind == "error":
        return f"<pre class='error'>{html.escape(out.get('ename', ''))}: {html.escape(out.get('evalue', ''))}</pre>"
    data = out.get("data", {})
    if "application/vnd.plotly.v1+json" in data:
        return plotly_div(data["application/vnd.plotly.v1+json"])
    if "text/html" in data:
        v = data["text/html"]
        return "".join(v) if isinstance(v, list) else v
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            return f"<img src='data:{mime};base64,{data[mime]}'>"
    if "image/svg+xml" in data:
        return data["image/svg+xml"]
    if "text/plain" in data:
        v = data["text/plain"]
        return f"<pre>{html.escape(''.join(v) if isinstance(v, list) else v)}</pre>"
    return ""


def _desc(w) -> str:
    d = getattr(w, "description", "") or ""
    return f"<b>{html.escape(d)}</b> " if d else ""


def _child(w) -> str:
    """A child's snapshot; one that fails (a worker thread changing it meanwhile) spoils only itself."""
    try:
        return static_html(w)
    except Exception as exc:
        return f"<pre>(no snapshot: {html.escape(repr(exc))})</pre>"


def static_html(w) -> str:
    """A live widget (and everything inside it) as static HTML."""
    import ipywidgets as W
    import plotly.graph_objects as go

    if isinstance(w, go.FigureWidget):
        return plotly_div(w.to_plotly_json())
    if isinstance(w, (W.HTML, W.HTMLMath)):
        return f"<div>{_desc(w)}{w.value}</div>"
    if isinstance(w, W.Label):
        return f"<div>{html.escape(str(w.value))}</div>"
    if isinstance(w, (W.Tab, W.Accordion, W.Stack)):
        titles = list(getattr(w, "titles", ()) or ())
        parts = []
        for i, c in enumerate(w.children):
            title = titles[i] if i < len(titles) and titles[i] else f"{i + 1}"
            parts.append(f"<details open><summary><b>{html.escape(str(title))}</b></summary>{_child(c)}</details>")
        return f"<div class='puyu-tabs'>{''.join(parts)}</div>"
    if isinstance(w, W.Box):
        direction = "row" if isinstance(w, W.HBox) else "column"
        kids = "".join(f"<div style='flex:1 1 auto;min-width:0'>{_child(c)}</div>" for c in w.children
                       if getattr(getattr(c, "layout", None), "display", None) != "none")
        return f"<div style='display:flex;flex-direction:{direction};gap:6px;flex-wrap:wrap'>{kids}</div>"
    if isinstance(w, W.Output):
        return "".join(output_html(o) for o in w.outputs)
    if isinstance(w, W.Button):
        return f"<button disabled>{html.escape(w.description or '')}</button>"
    if isinstance(w, (W.FloatProgress, W.IntProgress)):
        return f"<div>{_desc(w)}<progress value='{w.value}' max='{w.max}'></progress></div>"
    if isinstance(w, (W.Checkbox, W.ToggleButton)):
        return f"<div>{'☑' if w.value else '☐'} {html.escape(w.description or '')}</div>"
    if hasattr(w, "options") and hasattr(w, "label"):  # Dropdown, ToggleButtons, RadioButtons, Select
        return f"<div>{_desc(w)}{html.escape(str(w.label))}</div>"
    if isinstance(w, W.Image):
        import base64

        return f"<img src='data:image/{w.format};base64,{base64.b64encode(w.value).decode()}'>"
    if isinstance(w, W.ValueWidget):  # sliders, texts, …
        return f"<div>{_desc(w)}{html.escape(str(w.value))}</div>"
    return ""


def snapshot_all() -> dict[str, str]:
    """``{model_id: static html}`` for every live widget that has a view."""
    import ipywidgets as W
    from ipywidgets.widgets.widget import _instances  # Widget.widgets, without its deprecation warning

    out = {}
    for mid, w in list(_instances.items()):
        if isinstance(w, W.DOMWidget):
            try:
                out[mid] = static_html(w)
            except Exception as exc:  # one odd widget must not lose the others
                out[mid] = f"<pre>(no snapshot: {html.escape(repr(exc))})</pre>"
    return out


def write(path: str | os.PathLike) -> None:
    """Write :func:`snapshot_all` to ``path`` (temp file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(snapshot_all(), ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def install(path: str | os.PathLike) -> bool:
    """Snapshot every live widget to ``path`` after each cell of this IPython kernel (once per kernel)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    if ip is None or getattr(ip, "_puyu_snapshots", None) == str(path):
        return False
    ip._puyu_snapshots = str(path)
    ip.events.register("post_run_cell", lambda *_: write(path))
    # once more when the kernel exits: an Output widget's contents reach the kernel (nbclient's
    # sync_state) only after the cell that filled it ended, so the last cell's would be missed
    import atexit

    atexit.register(_write_quietly, path)
    return True


def _write_quietly(path) -> None:
    try:
        write(path)
    except Exception:  # interpreter shutting down: the last per-cell snapshot stands
        pass
