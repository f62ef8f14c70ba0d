"""QuantTradeoffPanel — what each quantization level costs and what it breaks, on your model.

* scatter: file size vs KL divergence from the reference (log scale), decode speed as marker size,
  hover details; one point per level;
* a table sortable by any column;
* pick two or more levels → side-by-side greedy continuations of a prompt (llama.cpp, worker thread);
* per-token KL heatmap over the held-out text: *where* a level departs from the reference;
* the per-tensor type map of every level;
* held-out tasks (self-cognition, sentiment, tool choice) each level answered: per-task accuracy, and the items a
  level loses against the reference with both replies (the chart's "held-out tasks solved" metric);
* export: the chart as standalone HTML and the table as CSV.

And ``MemoryWhatIf``: weights + KV cache of a real model from its config.json → fits in 8/24/80 GB?
"""
from __future__ import annotations

from pathlib import Path

import ipywidgets as W
import plotly.graph_objects as go

from ..deploy.measure import COLUMNS, compare_generations, write_table_csv
from ..deploy.quantize import bits_of, type_map
from ..i18n import t
from .base import CSS, PALETTE, error_html, esc, html_table, run_in_thread


HIGHER_IS_BETTER = {"task_acc"}  # every other metric of the chart: lower is closer to the reference


def _value(r: dict, y: str):
    v = r.get(y)
    return None if v is None or (isinstance(v, float) and v != v) else v


def pareto(rows: list[dict], y: str = "kl_mean") -> list[dict]:
    """The Pareto frontier of size × ``y``: from the smallest file up, each row better on ``y`` than
    every smaller one (no other level is both smaller and closer to the reference — or, for a higher-is-better
    ``y`` such as ``task_acc``, both smaller and more accurate). Rows without ``y`` are left out."""
    sign = -1 if y in HIGHER_IS_BETTER else 1
    have = [r for r in rows if _value(r, y) is not None]
    out, best = [], float("inf")
    for r in sorted(have, key=lambda r: (r["size_mb"], sign * r[y])):
        if sign * r[y] < best:
            out.append(r)
            best = sign * r[y]
    return out


def tradeoff_figure(rows: list[dict], y: str = "kl_mean") -> go.Figure:
    levels = [r["level"] for r in rows]
    sizes = [r["decode_tps"] for r in rows]
    top = max(sizes) or 1
    log = y.startswith("kl_")
    ys = [None if _value(r, y) is None else max(r[y], 1e-6) if log else r[y] for r in rows]  # None: not measured
    fig = go.Figure(go.Scatter(
        x=[r["size_mb"] for r in rows], y=ys, mode="markers+text", text=levels, textposition="top center",
        marker=dict(size=[12 + 28 * s / top for s in sizes], color=[PALETTE[i % len(PALETTE)] for i in range(len(rows))],
                    symbol=["diamond" if r.get("backend") == "transformers" else "circle" for r in rows],
                    line=dict(width=1, color="#333")),
        customdata=[[r["ppl"], r["top1"], r["decode_tps"], r["rss_mb"], r.get("backend", "llama.cpp")] for r in rows],
        hovertemplate=("<b>%{text}</b><br>size %{x:.2f} MB<br>" + (t(y) + " %{y:.2e}" if log else
                                                                   t(y) + " %{y:.0%}" if y == "task_acc" else "ΔPPL %{y:.3f}")
                       + "<br>PPL %{customdata[0]:.2f}<br>top-1 %{customdata[1]:.1%}<br>decode %{customdata[2]:.0f} tok/s"
                       "<br>RSS %{customdata[3]:.0f} MB<br>%{customdata[4]}<extra></extra>"),
    ))
    front = pareto(rows, y)
    if len(front) > 1:  # the levels no other beats on both size and fidelity
        fig.add_scatter(x=[r["size_mb"] for r in front], y=[max(r[y], 1e-6) if log else r[y] for r in front],
                        mode="lines", name=t("pareto"), line=dict(dash="dot", color="#777"), hoverinfo="skip")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=40), title=t("tradeoff_title"),
                      xaxis_title=t("file_size_mb"),
                      yaxis_title=f"{t(y)} (log)" if log else t(y) if y in HIGHER_IS_BETTER else "ΔPPL")
    if log:
        fig.update_yaxes(type="log")
    return fig


def kl_heatmap_html(tok, targets, kl, max_tokens: int = 240) -> str:
    """Tokens of the held-out text, red by how far this level's next-token distribution is from the
    reference's (KL), scaled to the worst token shown."""
    from ..tokenspans import spans_html

    ids = [int(x) for x in targets[:max_tokens]]
    vals = [float(x) for x in kl[:max_tokens]]
    top = max(vals) or 1.0
    body = spans_html(tok, ids, style=lambda i, _: f"background:rgba(197,34,31,{min(1.0, vals[i] / top):.2f});",
                      title=lambda i, _: f"KL {vals[i]:.2e}", line_height=1.8)
    return f"<div class='dim'>{esc(t('kl_heatmap_hint'))} (max {top:.2e})</div>" + body


def type_map_html(files: dict) -> str:
    """Each weight matrix (rows) in each level (columns) with its GGML type, shaded by its bits per weight: the
    mixes of the _M levels and the i-quants keep some tensors a step higher."""
    tmap = type_map(files)
    levels = list(files)
    head = "".join(f"<th>{esc(lv)}</th>" for lv in levels)
    body = []
    for name, by in tmap.items():
        cells = []
        for lv in levels:
            ty = by.get(lv, "")
            shade = min(1.0, bits_of(ty) / 16) if ty else 0
            cells.append(f"<td data-type='{esc(ty)}' style='background:rgba(33,102,172,{0.1 + 0.8 * shade:.2f});"
                         f"color:{'#fff' if shade > 0.45 else '#111'}'>{esc(ty)}</td>")
        body.append(f"<tr><td>{esc(name)}</td>{''.join(cells)}</tr>")
    return (f"<div class='dim'>{esc(t('type_map_hint'))}</div><table class='puyu-types'><tr><th></th>{head}</tr>"
            + "".join(body) + "</table>")


def _acc_ci(r: dict) -> str:
    """A level's overall task accuracy and its 95 % interval: ±1.96 × the standard error the deploy stage stored
    (``task_acc_stderr``, over the items it answered: what the sample size costs)."""
    se, n = r.get("task_acc_stderr"), len(r.get("replies") or [])
    return f"{r['task_acc']:.0%}" + (f" ± {1.96 * se:.0%} (n={n})" if se is not None and se == se else "")


def task_table_html(rows: list[dict]) -> str:
    """Per level (rows that answered the held-out tasks), the share of each task solved; overall with its 95 %
    interval."""
    have = [r for r in rows if r.get("task_by")]
    if not have:
        return ""
    tasks = list(have[0]["task_by"])
    table = [{"level": r["level"], **{k: f"{r['task_by'].get(k, float('nan')):.0%}" for k in tasks},
              "task_acc": _acc_ci(r)} for r in have]
    return html_table(table, ["level", *tasks, "task_acc"], labels={k: t(f"task_{k}") for k in tasks})


def task_diff_html(items: list[dict], ref: dict, row: dict, limit: int = 8) -> str:
    """The held-out items the reference level solves and ``row``'s level does not: the question and both replies."""
    from ..deploy.measure import task_ok

    if not items or not ref.get("replies") or not row.get("replies"):
        return ""
    lost = [(it, a, b) for it, a, b in zip(items, ref["replies"], row["replies"]) if task_ok(it, a) and not task_ok(it, b)]
    gained = sum(1 for it, a, b in zip(items, ref["replies"], row["replies"]) if not task_ok(it, a) and task_ok(it, b))
    head = f"<div class='dim'>{esc(t('tasks_lost').format(level=row['level'], ref=ref['level'], lost=len(lost), gained=gained))}</div>"
    cells = [{"task": it["task"], "question": it["messages"][-1]["content"][:60], "expected": it["answer"],
              ref["level"]: a[:80], row["level"]: b[:80]} for it, a, b in lost[:limit]]
    return head + (html_table(cells, ["task", "question", "expected", ref["level"], row["level"]]) if cells else "")


class QuantTradeoffPanel:
    def __init__(self, rows: list[dict], detail: dict | None = None, tok=None, files: dict | None = None,
                 export_dir: str | Path | None = None):
        self.rows = list(rows)
        self.detail, self.tok = detail, tok
        self.error: BaseException | None = None  # what the last comparison raised
        gguf_rows = [r for r in rows if r.get("backend", "llama.cpp") == "llama.cpp"]
        self.files = files or {r["level"]: r.get("file") for r in gguf_rows}
        self.export_dir = Path(export_dir) if export_dir else None
        self.fig = go.FigureWidget(tradeoff_figure(self.rows))
        metrics = [("KL", "kl_mean"), ("ΔPPL", "delta_ppl")]
        if rows and all(r.get("kl_chat_mean") is not None for r in rows):  # measured on the model's own replies too
            metrics.insert(1, (t("kl_chat_mean"), "kl_chat_mean"))
        if any(_value(r, "task_acc") is not None for r in rows):  # the GGUF levels' held-out tasks
            metrics.append((t("task_acc"), "task_acc"))
        self.metric = W.ToggleButtons(options=metrics, value="kl_mean")
        self.metric.observe(lambda ch: self._replot(), names="value")
        self.sort_by = W.Dropdown(options=COLUMNS, value="size_mb", description=t("sort_by"))
        self.desc = W.Checkbox(value=True, description="↓")
        self.table = W.HTML()
        self.sort_by.observe(lambda ch: self._draw_table(), names="value")
        self.desc.observe(lambda ch: self._draw_table(), names="value")
        levels = [r["level"] for r in self.rows]
        gen_levels = [lv for lv in levels if lv in self.files]  # GGUF levels generate through llama.cpp
        self.pick = W.SelectMultiple(options=gen_levels, value=tuple(gen_levels[:1] + gen_levels[-2:]),
                                     rows=min(8, len(gen_levels)), description=t("levels"))
        self.prompt = W.Text(value="今天", description=t("prompt"))
        self.gen_btn = W.Button(description=t("generate"), button_style="primary", icon="play")
        self.gen_btn.on_click(lambda _: self.compare())
        self.gens = W.HTML()
        self.heat_level = W.Dropdown(options=levels[1:] or levels, description=t("level"))
        self.heat_level.observe(lambda ch: self._draw_heat(), names="value")
        self.heat = W.HTML()
        self.export_btn = W.Button(description=t("export"), icon="download")
        self.export_btn.on_click(lambda _: self.export())
        self.export_msg = W.HTML()
        # files that are here (results.json can name files of another machine or a removed workspace)
        present = {lv: p for lv, p in self.files.items() if p and Path(p).is_file()}
        self.types = W.HTML(type_map_html(present) if present else "")
        task_rows = [r["level"] for r in self.rows if r.get("replies")]
        self.task_level = W.Dropdown(options=task_rows[1:] or task_rows, description=t("level"))
        self.task_level.observe(lambda ch: self._draw_tasks(), names="value")
        self.tasks = W.HTML()
        self.generations: dict[str, str] = {}
        self.ui = W.VBox([
            W.HTML(CSS + f"<div class='puyu'><h4>{esc(t('quant_panel'))}</h4></div>"),
            self.metric, self.fig, W.HBox([self.sort_by, self.desc, self.export_btn, self.export_msg]), self.table,
            W.HTML(f"<div class='puyu'><h4>{esc(t('side_by_side'))}</h4></div>"),
            W.HBox([self.pick, W.VBox([self.prompt, self.gen_btn])]), self.gens,
            W.HTML(f"<div class='puyu'><h4>{esc(t('kl_heatmap'))}</h4></div>"), self.heat_level, self.heat,
            W.HTML(f"<div class='puyu'><h4>{esc(t('type_map'))}</h4></div>"), self.types,
            *([W.HTML(f"<div class='puyu'><h4>{esc(t('task_panel'))}</h4></div>"), self.task_level, self.tasks]
              if task_rows else []),
        ])
        self._draw_table()
        self._draw_heat()
        self._draw_tasks()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)

    @property
    def points(self) -> int:
        return len(self.fig.data[0].x)

    def _replot(self) -> None:
        new = tradeoff_figure(self.rows, self.metric.value)
        with self.fig.batch_update():
            self.fig.data[0].y = new.data[0].y
            self.fig.data[0].hovertemplate = new.data[0].hovertemplate
            if len(self.fig.data) > 1 and len(new.data) > 1:  # the frontier of this metric
                self.fig.data[1].x, self.fig.data[1].y = new.data[1].x, new.data[1].y
            self.fig.layout.yaxis.type = "log" if self.metric.value.startswith("kl_") else "linear"
            self.fig.layout.yaxis.title.text = new.layout.yaxis.title.text

    def sorted_rows(self) -> list[dict]:
        col = self.sort_by.value

        def missing(v) -> bool:
            return v is None or (isinstance(v, float) and v != v)

        have = [r for r in self.rows if not missing(r.get(col))]
        return sorted(have, key=lambda r: r[col], reverse=self.desc.value) + [r for r in self.rows if r not in have]

    def _draw_table(self) -> None:
        def fmt(c, v):
            if v is None:  # not measured for this row (a transformers row has no llama.cpp buffers)
                return "–"
            if isinstance(v, float):
                if v != v:
                    return "–"
                return f"{v:.2e}" if c.startswith("kl_") else (f"{v:.1%}" if c.startswith("top1") or c == "task_acc" else f"{v:,.2f}")
            return v

        rows = [{c: fmt(c, r.get(c, float("nan"))) for c in COLUMNS} for r in self.sorted_rows()]
        self.table.value = CSS + "<div class='puyu'>" + html_table(rows, COLUMNS, labels={c: t(c) for c in COLUMNS}) + "</div>"

    def _draw_tasks(self) -> None:
        """The per-task table, and what the chosen level loses against the reference."""
        items = (self.detail or {}).get("tasks") or []
        answered = [r for r in self.rows if r.get("replies")]
        if not answered:
            self.tasks.value = ""
            return
        row = next((r for r in answered if r["level"] == self.task_level.value), answered[-1])
        self.tasks.value = (CSS + "<div class='puyu'>" + task_table_html(self.rows)
                            + task_diff_html(items, answered[0], row) + "</div>")

    def _draw_heat(self) -> None:
        if not self.detail or self.tok is None or self.heat_level.value not in self.detail["kl"]:
            self.heat.value = ""
            return
        self.heat.value = CSS + "<div class='puyu'>" + kl_heatmap_html(
            self.tok, self.detail["targets"], self.detail["kl"][self.heat_level.value]) + "</div>"

    def compare(self, prompt: str | None = None, levels: list[str] | None = None, max_new_tokens: int = 32,
                wait: bool = False):
        """Greedy continuations of ``prompt`` by each chosen level, side by side."""
        prompt = prompt if prompt is not None else self.prompt.value
        levels = list(levels or self.pick.value)
        self.gen_btn.disabled = True

        def work():
            def shown(lv, text):
                self.generations = {**self.generations, lv: text}
                self._draw_gens(prompt)

            self.generations = {}
            return compare_generations(self.files, prompt, levels, max_new_tokens, on_level=shown)

        self.error = None

        def done(result, error):
            self.error = error  # kept: what the comparison raised
            self.gen_btn.disabled = False
            if error is not None:
                self.gens.value = error_html(error)

        th = run_in_thread(work, on_done=done, name="puyu-quant-gen")
        if wait:
            th.join()
            if self.error is not None:
                raise self.error
            return self.generations
        return None

    def _draw_gens(self, prompt: str) -> None:
        cols = "".join(f"<td style='vertical-align:top;padding:4px 8px'><b>{esc(lv)}</b><br>"
                       f"<span class='dim'>{esc(prompt)}</span>{esc(text)}</td>" for lv, text in self.generations.items())
        self.gens.value = CSS + f"<div class='puyu'><table class='puyu-table'><tr>{cols}</tr></table></div>"

    def export(self, directory: str | Path | None = None) -> list[Path]:
        """Write the chart (standalone HTML) and the table (CSV)."""
        d = Path(directory or self.export_dir or ".")
        d.mkdir(parents=True, exist_ok=True)
        chart = d / "quant_tradeoff.html"
        go.Figure(self.fig).write_html(str(chart), include_plotlyjs=True)
        table = write_table_csv(self.rows, d / "quant_tradeoff.csv")
        self.export_msg.value = f"<span class='puyu ok'>{esc(t('exported'))}: {esc(chart)}, {esc(table.name)}</span>"
        return [chart, table]


class MemoryWhatIf:
    """Weights at a precision + KV cache → does it fit in 8 / 24 / 80 GB?"""

    def __init__(self, configs: dict[str, dict] | None = None):
        from ..deploy.memory import KNOWN, KV_BYTES, WEIGHT_BITS

        self.configs = dict(configs or KNOWN)
        self.model = W.Dropdown(options=list(self.configs), description=t("model"))
        self.path = W.Text(placeholder="…/config.json", description="config.json")
        self.load_btn = W.Button(description=t("add"), icon="plus")
        self.load_btn.on_click(lambda _: self.add_config(self.path.value))
        self.weights = W.Dropdown(options=list(WEIGHT_BITS), value="bf16/fp16", description=t("weights"))
        self.context = W.IntSlider(value=4096, min=512, max=262144, step=512, description=t("context"))
        self.batch = W.IntSlider(value=1, min=1, max=64, description="batch")
        self.kv = W.Dropdown(options=list(KV_BYTES), value="f16", description="KV cache")
        self.out = W.HTML()
        for w in (self.model, self.weights, self.context, self.batch, self.kv):
            w.observe(lambda ch: self.update(), names="value")
        self.ui = W.VBox([W.HTML(CSS + f"<div class='puyu'><h4>{esc(t('memory_whatif'))}</h4></div>"),
                          W.HBox([self.model, self.path, self.load_btn]),
                          W.HBox([self.weights, self.kv]), W.HBox([self.context, self.batch]), self.out])
        self.update()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)

    def add_config(self, path: str) -> None:
        from ..deploy.memory import load_config

        try:
            cfg = load_config(path)
        except Exception as e:
            self.out.value = f"<span class='puyu bad'>{esc(e)}</span>"
            return
        name = Path(path).parent.name if path.endswith(".json") else Path(path).name
        self.configs[name] = cfg
        self.model.options = list(self.configs)
        self.model.value = name

    def update(self) -> dict:
        from ..deploy.memory import GPUS_GB, estimate

        e = estimate(self.configs[self.model.value], self.weights.value, self.context.value, self.batch.value,
                     self.kv.value)
        bars = []
        for g in GPUS_GB:
            frac = min(1.0, e["total_gb"] / g)
            cls = "ok" if e["fits"][g] else "bad"
            bars.append(f"<tr><td>{g} GB</td><td><div style='width:240px;background:#eee'><div style='width:{240 * frac:.0f}px;"
                        f"height:12px;background:{'#1e8e3e' if e['fits'][g] else '#c5221f'}'></div></div></td>"
                        f"<td class='{cls}'>{esc(t('fits_yes') if e['fits'][g] else t('fits_no'))}</td></tr>")
        self.out.value = CSS + (
            f"<div class='puyu'>{e['parameters'] / 1e9:.2f} B {esc(t('parameters'))} · {esc(t('weights'))} "
            f"<b>{e['weights_gb']:.2f} GB</b> + KV cache <b>{e['kv_cache_gb']:.2f} GB</b> (+10 %) = "
            f"<b>{e['total_gb']:.2f} GB</b><table class='puyu-table'>{''.join(bars)}</table></div>")
        self.last = e
        return e
