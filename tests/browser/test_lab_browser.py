"""The JupyterLab extension and the labs' panels in a real browser (Debian Chromium, headless).

1. The "书生·浦语 Chain" sidebar lists the nine stages and flips a stage to present once its lab ran.
2. 02_pretrain.ipynb, opened from the sidebar: the training cell's live loss plot grows, Stop ends
   training early with a checkpoint.
3. The deploy, eval, agent and RAG labs run in the browser: the quantization trade-off chart has one
   point per level, the eval leaderboard and the agent trace render with their content, the RAG
   panel's threshold slider changes the refusal counts.
4. Screenshots of each panel are saved under test-artifacts/browser/.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from puyu_lab.i18n import STRINGS

from .conftest import Lab, open_lab
from .shim import jupyterlab_browser_check_env

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

STAGES = ["data", "pretrain", "finetune", "preference", "rl", "deploy", "eval", "agent", "rag"]

# ---- JavaScript run in the page (window.jupyterapp: the server runs with expose_app_in_browser) ------
RUN_ALL_ABOVE = """async (idx) => {
  const app = window.jupyterapp; const panel = app.shell.currentWidget;
  await panel.sessionContext.ready;
  panel.content.activeCellIndex = idx;
  await app.commands.execute('notebook:run-all-above');
  return true;
}"""
RUN_CELL = """(idx) => {
  const app = window.jupyterapp; const panel = app.shell.currentWidget;
  panel.content.activeCellIndex = idx;
  app.commands.execute('notebook:run-cell');
}"""
RUN_ALL = """async () => {
  const app = window.jupyterapp; const panel = app.shell.currentWidget;
  await panel.sessionContext.ready;
  await app.commands.execute('notebook:run-all-cells');
  return true;
}"""
CELL_ERRORS = """() => [...window.jupyterapp.shell.currentWidget.node.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(e => e.textContent).filter(t => /Error|Traceback/.test(t) && !/Warning/.test(t))"""
PLOT_POINTS = """(idx) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[idx];
  const gd = cell && cell.node.querySelector('.js-plotly-plot');
  return gd && gd.data ? gd.data.map(t => (t.x || []).length) : null;
}"""
STAGE_CHECKS = """() => Object.fromEntries([...document.querySelectorAll('#puyu-lab-chain .puyu-stage')]
  .map(e => { const c = e.querySelector('.puyu-checks[data-total]');
              return [e.dataset.stage, c ? [+c.dataset.passed, +c.dataset.total] : null]; }))"""
CHECKS_ALL_PASS = """() => [...document.querySelectorAll('#puyu-lab-chain .puyu-stage')].every(e => {
  const c = e.querySelector('.puyu-checks[data-total]'); return !!c && +c.dataset.total > 0 && c.dataset.passed === c.dataset.total; })"""
STAGE_STATUS = """() => Object.fromEntries([...document.querySelectorAll('#puyu-lab-chain .puyu-stage')]
  .map(e => [e.dataset.stage, e.dataset.status]))"""


def cell_index(page, needle: str) -> int:
    idx = page.evaluate("""(needle) => window.jupyterapp.shell.currentWidget.content.widgets
        .findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(needle))""", needle)
    assert idx >= 0, needle
    return idx


def cell(page, idx: int):
    """The ``idx``-th cell of the notebook in front (other open notebooks have cells too)."""
    wid = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    return page.locator(f"[id='{wid}'] .jp-Notebook .jp-Cell").nth(idx)


def open_notebook(page, path: str) -> None:
    page.evaluate("async (p) => { await window.jupyterapp.commands.execute('docmanager:open', {path: p});"
                  " return true; }", path)
    page.wait_for_function("(p) => { const w = window.jupyterapp.shell.currentWidget;"
                           " return w && w.context && w.context.path === p && w.sessionContext.session; }",
                           arg=path, timeout=60_000)
    page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.ready;"
                  " return true; }")


def wait_idle(page, timeout_s: float) -> None:
    page.wait_for_function("() => { const s = window.jupyterapp.shell.currentWidget.sessionContext.session;"
                           " return s && s.kernel && s.kernel.status === 'idle'; }", timeout=timeout_s * 1000)


# ---- the extension itself ------------------------------------------------------------------------------
def test_extension_installed_and_jupyterlab_browser_check_passes(tmp_path):
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True)
    listing = out.stdout + out.stderr
    line = next((ln for ln in listing.splitlines() if "puyu-lab-chain" in ln), "")
    assert "enabled" in line and "OK" in line and "puyu_lab_chain" in line, listing
    srv = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"], capture_output=True,
                         text=True)
    assert "puyu_lab_chain 0.1.0 \x1b[32mOK" in srv.stderr + srv.stdout or "puyu_lab_chain 0.1.0 OK" in \
        (srv.stderr + srv.stdout).replace("\x1b[32m", "").replace("\x1b[0m", "")
    env = jupyterlab_browser_check_env(tmp_path / "browsers")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    r = subprocess.run([sys.executable, "-m", "jupyterlab.browser_check", "--allow-root"], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "Browser test complete" in r.stdout, r.stdout[-2000:]
    assert "puyu_lab_chain | extension was successfully loaded" in r.stderr


# ---- 1 + 2: a fresh workspace: sidebar, REST, the data lab flips a stage, pretrain with Stop -------------
@pytest.fixture(scope="module")
def fresh_lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fresh")
    lab = Lab(tmp / "workspace", tmp)
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def fresh_page(browser, fresh_lab):
    page = open_lab(browser, fresh_lab)
    yield page
    page.close()


def test_rest_endpoint_requires_the_token(fresh_lab):
    assert fresh_lab.api("puyu-lab/api/chain", token=None).status_code == 403
    assert fresh_lab.api("puyu-lab/api/chain", token="wrong" + fresh_lab.token).status_code == 403
    r = fresh_lab.api("puyu-lab/api/chain")
    assert r.status_code == 200
    state = r.json()
    assert [s["key"] for s in state["stages"]] == STAGES
    assert all(s["status"] == "missing" for s in state["stages"])
    assert state["stages"][1]["lab_path"] == "02_pretrain.ipynb" and state["workspace"] == str(fresh_lab.home)


def test_sidebar_lists_the_stages_and_flips_one_when_its_lab_ran(fresh_lab, fresh_page, shots):
    from puyu_lab.labrunner import run_lab
    from puyu_lab.workspace import Workspace

    page = fresh_page
    page.click("li.lm-TabBar-tab[data-id='puyu-lab-chain']")
    page.wait_for_selector("#puyu-lab-chain .puyu-stage", timeout=30_000)
    assert page.inner_text("#puyu-lab-chain .puyu-chain-title") == "书生·浦语 Chain"
    assert page.evaluate(STAGE_STATUS) == {k: "missing" for k in STAGES}
    names = page.locator("#puyu-lab-chain .puyu-stage-name").all_inner_texts()
    assert names == ["书生·万卷", "InternLM-Train", "XTuner", "XTuner DPO", "GRPO", "LMDeploy", "OpenCompass",
                     "Lagent / AgentLego", "茴香豆 HuixiangDou"]
    # launcher cards for the labs
    page.evaluate("async () => { await window.jupyterapp.commands.execute('launcher:create'); return true; }")
    page.wait_for_selector(".jp-LauncherCard[title*='02_pretrain.ipynb']", timeout=30_000)
    cards = page.locator(".jp-Launcher-section:has-text('书生·浦语 Labs') .jp-LauncherCard").count()
    assert cards == 10  # 00_tour … 09_rag
    # each lab's self-checks, none passed yet (puyu_lab.checks on an empty workspace)
    from puyu_lab.checks import run as run_checks

    by_lab = run_checks(Workspace(fresh_lab.home), scope="artifact").by_lab()
    page.wait_for_function(f"() => Object.values(({STAGE_CHECKS})()).every(v => v !== null)", timeout=60_000)
    fresh = page.evaluate(STAGE_CHECKS)
    assert all(v is not None and v[0] == 0 and v[1] > 0 for v in fresh.values()), fresh
    page.screenshot(path=str(shots / "sidebar-missing.png"))
    res = run_lab(fresh_lab.root / "01_data.ipynb", fresh_lab.home / "chain", profile="quick",
                  workspace=Workspace(fresh_lab.home))
    assert res.ok, res.error
    page.wait_for_selector("#puyu-lab-chain .puyu-stage[data-stage='data'][data-status='present']", timeout=15_000)
    assert page.evaluate(STAGE_STATUS)["pretrain"] == "missing"
    assert "documents=" in page.inner_text("#puyu-lab-chain .puyu-stage[data-stage='data']")
    n_data = by_lab["01_data.ipynb"][1]
    page.wait_for_selector(f"#puyu-lab-chain .puyu-stage[data-stage='data'] .puyu-checks[data-passed='{n_data}']",
                           timeout=60_000)  # refreshed with the artifact status
    assert page.evaluate(STAGE_CHECKS)["pretrain"][0] == 0
    page.locator("#puyu-lab-chain").screenshot(path=str(shots / "sidebar-data-present.png"))


def test_pretrain_in_the_browser_live_plot_and_stop(fresh_lab, fresh_page, shots):
    page = fresh_page
    page.click("#puyu-lab-chain .puyu-stage[data-stage='pretrain'] button.puyu-open-lab")
    page.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget;"
                           " return w && w.context && w.context.path === '02_pretrain.ipynb' && w.sessionContext.session; }",
                           timeout=60_000)
    page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.ready;"
                  " return true; }")
    train = cell_index(page, "panel.start(")
    page.evaluate(RUN_ALL_ABOVE, train)  # tokenizer and everything before training
    assert page.evaluate(CELL_ERRORS) == []
    page.evaluate(RUN_CELL, train)
    page.wait_for_function(f"() => {{ const p = ({PLOT_POINTS})({train}); return p && p[0] >= 2; }}", timeout=120_000)
    first = page.evaluate(PLOT_POINTS, train)[0]
    page.wait_for_function(f"() => ({PLOT_POINTS})({train})[0] > {first + 2}", timeout=120_000)
    grown = page.evaluate(PLOT_POINTS, train)[0]
    assert grown > first
    cell_ = cell(page, train)
    cell_.screenshot(path=str(shots / "training-panel-live.png"))
    cell_.locator("button:has-text('Stop')").click()
    cell_.locator("text=/stopped @ \\d+/").wait_for(timeout=120_000)
    status = cell_.locator("text=/stopped @ \\d+/").inner_text()
    stopped_at = int(status.rsplit("@", 1)[1])
    cell_.screenshot(path=str(shots / "training-panel-stopped.png"))
    # the engine ended early and left a checkpoint; the sidebar shows model/base
    page.wait_for_selector("#puyu-lab-chain .puyu-stage[data-stage='pretrain'] [data-artifact='model/base']",
                           timeout=120_000)  # saved after the final evaluation and samples
    state = fresh_lab.api("puyu-lab/api/chain").json()
    pre = next(s for s in state["stages"] if s["key"] == "pretrain")
    base = next(a for a in pre["artifacts"] if a["name"] == "model/base")
    assert base["figures"]["stopped"] is True and base["figures"]["steps"] == stopped_at
    assert stopped_at < base["figures"]["max_steps"]
    ckpts = list((fresh_lab.home / "runs").rglob("checkpoint-*"))
    assert any(p.name == f"checkpoint-{stopped_at}" for p in ckpts), ckpts
    page.wait_for_selector("#puyu-lab-chain .puyu-stage[data-stage='pretrain'][data-status='present']",
                           timeout=15_000)
    assert cell_.locator("button:has-text('Resume')").is_enabled()
    # the last test on this workspace: its kernel (the model, the stopped run) must not sit beside the chain's labs
    assert fresh_lab.shutdown_kernels()


# ---- 3: the panels of the later labs, on the whole chain's artifacts ----------------------------------------
# The first of these tests sets up the whole chain (every lab, once per session): ~8 min where bf16 is
# native, ~15 min on a plain AVX2 CPU in fp32 — beyond the per-test timeout, so these get the chain's own.
WHOLE_CHAIN = pytest.mark.timeout(2700)
@pytest.fixture(scope="module")
def chain_lab(chain, tmp_path_factory):
    results = chain.run_all()
    failed = [r for r in results if not r.ok]
    if failed:
        pytest.skip(f"the chain failed at {failed[0].lab}")
    tmp = tmp_path_factory.mktemp("chainlab")
    lab = Lab(chain.ws.root, tmp)
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def chain_page(browser, chain_lab):
    page = open_lab(browser, chain_lab)
    yield page
    page.close()


@WHOLE_CHAIN
def test_sidebar_shows_the_whole_chain_present(chain, chain_page, shots):
    page = chain_page
    page.click("li.lm-TabBar-tab[data-id='puyu-lab-chain']")
    page.wait_for_selector("#puyu-lab-chain .puyu-stage", timeout=30_000)
    assert page.evaluate(STAGE_STATUS) == {k: "present" for k in STAGES}
    # every lab's checks pass on the chain's own workspace, and the sidebar says so
    try:  # computed in the server's background once the artifacts are in: seconds, more on a busy machine
        page.wait_for_function(CHECKS_ALL_PASS, timeout=120_000)
    except Exception:
        from puyu_lab.checks import run as run_checks

        card = run_checks(chain.ws, scope="artifact")
        pytest.fail(f"sidebar checks {page.evaluate(STAGE_CHECKS)}; the checks on the workspace:\n{card.text()}")
    page.locator("#puyu-lab-chain").screenshot(path=str(shots / "sidebar-chain-present.png"))


@WHOLE_CHAIN
def test_quant_tradeoff_chart_has_one_point_per_level(chain, chain_page, shots):
    page = chain_page
    open_notebook(page, "06_deploy.ipynb")
    page.evaluate(RUN_ALL)
    wait_idle(page, 300)
    assert page.evaluate(CELL_ERRORS) == []
    rows = json.loads((chain.ws.get("quant/sft").path / "results.json").read_text())
    levels = [r["level"] for r in rows]
    points = page.evaluate("""() => [...window.jupyterapp.shell.currentWidget.node.querySelectorAll('.js-plotly-plot')]
        .filter(gd => gd.data && gd.data[0] && (gd.data[0].text || []).includes('Q4_K_M'))
        .map(gd => ({n: gd.data[0].x.length, text: gd.data[0].text}))""")
    assert points, "no trade-off chart in the page"
    assert points[0]["n"] == len(levels) and points[0]["text"] == levels
    idx = cell_index(page, "QuantTradeoffPanel(")
    cell(page, idx).screenshot(path=str(shots / "quant-tradeoff.png"))


@WHOLE_CHAIN
def test_eval_leaderboard_renders_with_its_content(chain_page, shots):
    page = chain_page
    open_notebook(page, "07_eval.ipynb")
    page.evaluate(RUN_ALL)
    wait_idle(page, 300)
    assert page.evaluate(CELL_ERRORS) == []
    box = cell(page, cell_index(page, "EvalPanel("))
    # JupyterLab renders cells out of view with content-visibility: auto — their innerText is empty
    box.scroll_into_view_if_needed()
    table = box.locator("table.puyu-table").first
    table.wait_for(timeout=30_000)
    head = [h.strip() for h in table.locator("th").all_text_contents()]
    assert "base" in head and "sft" in head and "dpo" in head, head
    body = table.text_content()
    for task in ("selfcog", "sentiment", "news_ppl", "arithmetic"):
        assert task in body, body[:500]
    assert box.locator(".js-plotly-plot").count() >= 2  # bars and radar
    box.screenshot(path=str(shots / "eval-leaderboard.png"))


@WHOLE_CHAIN
def test_agent_trace_renders_with_its_steps(chain_page, shots):
    page = chain_page
    open_notebook(page, "08_agent.ipynb")
    page.evaluate(RUN_ALL)
    wait_idle(page, 300)
    assert page.evaluate(CELL_ERRORS) == []
    box = cell(page, cell_index(page, "panel = AgentTracePanel()"))
    box.scroll_into_view_if_needed()
    box.locator(".puyu-trace .pt-step").first.wait_for(timeout=30_000)
    kinds = box.locator(".puyu-trace .pt-step").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds and kinds[-1] in ("final", "observation", "error"), kinds
    assert "37*41" in box.locator(".puyu-trace .pt-question").text_content()
    # a turn opens to the exact prompt; a turn without a call says why
    box.locator(".puyu-trace details.pt-prompt_sent summary").first.click()
    assert "<|im_start|>" in box.locator(".puyu-trace details.pt-prompt_sent pre").first.text_content()
    if "call" not in kinds:
        assert "Why was no tool called?" in box.locator(".puyu-trace .pt-diagnosis").first.text_content()
    box.screenshot(path=str(shots / "agent-trace.png"))


REFUSAL = """(idx) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[idx];
  const e = c && c.node.querySelector('.puyu-refusal');
  return e ? {answered: +e.dataset.answered, refused: +e.dataset.refused} : null; }"""


@WHOLE_CHAIN
def test_rag_threshold_slider_changes_the_refusal_counts(chain, chain_page, shots):
    """Lab 09 in the browser: moving the threshold slider (keyboard on its handle, as a learner would)
    changes the answered / refused counts in the page, to the engine's figures at that threshold."""
    from puyu_lab.artifacts import load_rag_eval
    from puyu_lab.rag.evaluate import refusal_at

    page = chain_page
    open_notebook(page, "09_rag.ipynb")
    page.evaluate(RUN_ALL)
    wait_idle(page, 300)
    assert page.evaluate(CELL_ERRORS) == []
    idx = cell_index(page, "RAGPanel.from_result(")
    box = cell(page, idx)
    box.scroll_into_view_if_needed()
    box.locator(".puyu-refusal").wait_for(timeout=30_000)
    ev = load_rag_eval(chain.ws)  # what the run in the page wrote
    test = [r for r in ev["rows"] if r["split"] == "test"]
    scores, labels = [r["relevance"] for r in test], [r["answerable"] for r in test]
    at = refusal_at(scores, labels, ev["metrics"]["threshold"])
    first = page.evaluate(REFUSAL, idx)
    assert first == {"answered": at["answered"], "refused": at["refused"]}, first
    handle = box.locator(".widget-slider .noUi-handle").first
    handle.focus()
    handle.press("Home")  # the lowest threshold: every question answered
    page.wait_for_function(f"(idx) => {{ const r = ({REFUSAL})(idx); return r && r.refused === 0; }}", arg=idx,
                           timeout=30_000)
    assert page.evaluate(REFUSAL, idx) == {"answered": len(test), "refused": 0}
    handle.press("End")  # above every score: every question refused
    page.wait_for_function(f"(idx) => {{ const r = ({REFUSAL})(idx); return r && r.answered === 0; }}", arg=idx,
                           timeout=30_000)
    assert page.evaluate(REFUSAL, idx) == {"answered": 0, "refused": len(test)}
    for _ in range(3):  # a few steps down from the top: the counts follow the engine's at the slider's value
        handle.press("PageDown")
    page.wait_for_timeout(1500)
    value = float(box.locator(".widget-slider .widget-readout").first.text_content())
    want = refusal_at(scores, labels, value)
    got = page.evaluate(REFUSAL, idx)
    assert got == {"answered": want["answered"], "refused": want["refused"]}, (value, got)
    box.screenshot(path=str(shots / "rag-panel.png"))


# ---- 5: lab 08's trace is live: steps appear while the kernel is busy, Stop ends the run ------------------
# The lab's own cells run in a real JupyterLab and Chromium; only the model is a scripted one, defined in
# the kernel, that streams a calculator call through the model layer's generate() one character every
# 50 ms and honours the stop flag between characters, as the real decode loop does.
SLOW_BACKEND = '''
import json, time
from puyu_lab.models.base import Generation, Model, is_set

class SlowScripted(Model):
    name = "slow-scripted"
    reply = ('<|action_start|><|plugin|>\\n{"name": "calculator", "parameters": {"expression": "37*41"}}'
             '<|action_end|>\\n')

    def _pieces(self, inp, *, stop_flag=None, **kw):
        t0, out, finish = time.perf_counter(), "", "length"
        for ch in self.reply:
            if is_set(stop_flag):
                finish = "stopped"
                break
            time.sleep(0.05)
            out += ch
            yield ch
        yield Generation(out, json.dumps(inp, ensure_ascii=False), 10, len(out), time.perf_counter() - t0,
                         finish=finish)

backend = SlowScripted()
offered = tools.subset("calculator", "add_days")
question = "37*41 等于多少？"
'''
KERNEL_EXEC = """async (code) => {
  const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const f = k.requestExecute({code, store_history: false});
  let err = null;
  f.onIOPub = (m) => { if (m.header.msg_type === 'error') err = m.content.ename + ': ' + m.content.evalue; };
  await f.done;
  return err;
}"""
CELL_BUSY = """(idx) => {
  const c = window.jupyterapp.shell.currentWidget.content.widgets[idx];
  return c.node.querySelector('.jp-InputPrompt').textContent.includes('*');
}"""
KERNEL_STATUS = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"


@pytest.fixture(scope="module")
def agent_lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("agentlab")
    lab = Lab(tmp / "workspace", tmp)
    yield lab
    lab.stop()


@pytest.mark.timeout(600)
def test_agent_trace_is_live_and_stop_ends_the_run(browser, agent_lab, shots):
    page = open_lab(browser, agent_lab)
    try:
        open_notebook(page, "08_agent.ipynb")
        setup = cell_index(page, "prof, ws = pl.setup(")
        run_cell = cell_index(page, "panel.run(agent, question)")
        wait_cell = cell_index(page, "trace = await panel.wait_async()")
        assert wait_cell == run_cell + 1
        page.evaluate(RUN_ALL_ABOVE, setup + 1)  # parameters and setup: profile, workspace, tools, config
        assert page.evaluate(CELL_ERRORS) == []
        assert page.evaluate(KERNEL_EXEC, SLOW_BACKEND) is None
        t0 = time.monotonic()
        page.evaluate(RUN_CELL, run_cell)  # displays the panel, starts the run in a worker thread
        page.evaluate(RUN_CELL, wait_cell)  # the next cell waits for the trace: the kernel is busy
        box = cell(page, run_cell)
        trace = box.locator(".puyu-trace")
        trace.locator(".pt-status.pt-running").wait_for(timeout=60_000)
        trace.locator(".pt-step").first.wait_for(timeout=60_000)
        first_step_s = time.monotonic() - t0
        steps = trace.locator(".pt-step").count()
        # the kernel is still executing the waiting cell: its prompt is [*], no execute reply yet. (The
        # kernel's status light is no witness here: each widget message ipykernel 7 dispatches while an
        # awaiting cell runs is published with its own busy → idle.)
        busy, kernel = page.evaluate(CELL_BUSY, wait_cell), page.evaluate(KERNEL_STATUS)
        assert steps >= 1 and busy, (steps, busy, kernel)
        # the badge in the language this lab runs in (Lab's default, en), from the zh/en table
        assert trace.locator(".pt-status").inner_text() == STRINGS["status_running"][0] == "running"
        kinds = trace.locator(".pt-step").evaluate_all("els => els.map(e => e.dataset.kind)")
        assert kinds[0] == "call", kinds
        box.screenshot(path=str(shots / "agent-trace-live.png"))
        trace.locator("button.pt-stop").click()
        trace.locator(".pt-status.pt-stopped").wait_for(timeout=10_000)
        stopped_s = time.monotonic() - t0
        wait_idle(page, 60)
        assert page.evaluate(CELL_ERRORS) == []
        out_cell = cell(page, wait_cell)
        out_cell.scroll_into_view_if_needed()  # out of view, a cell's innerText is empty (content-visibility)
        out = out_cell.locator(".jp-OutputArea").text_content()
        assert "status: stopped" in out, out
        # Stop ended the second turn's generation at a character, before its call ran; 3 turns would take ~14 s
        info = page.evaluate(KERNEL_EXEC, "assert trace.status == 'stopped' and len(trace.turns) == 2, trace.turns\n"
                                          "assert len(trace.turns[1]['raw']) < len(backend.reply)\n"
                                          "assert [s['kind'] for s in trace.steps] == ['call', 'observation']")
        assert info is None, info
        assert stopped_s < 12, stopped_s
        box.screenshot(path=str(shots / "agent-trace-stopped.png"))
        print(f"first step after {first_step_s:.1f} s ({steps} step(s), kernel {kernel}); stopped after {stopped_s:.1f} s")
    finally:
        page.close()
