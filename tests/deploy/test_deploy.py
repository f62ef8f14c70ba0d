"""GGUF conversion with llama.cpp's converter, the ladder, clear errors, the OpenAI-compatible server."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from puyu_lab.errors import InputError
from puyu_lab.workspace import Workspace

from .helpers import TEXT

pytestmark = pytest.mark.slow


def test_f32_gguf_matches_transformers(model_dir, ladder):
    import torch
    from transformers import AutoModelForCausalLM

    from puyu_lab.models.gguf import load
    from puyu_lab.models.tokenizer import load_tokenizer

    tok = load_tokenizer(model_dir)
    llm = load(ladder["F32"], n_ctx=256, logits_all=True)
    ids = tok(TEXT)["input_ids"]
    assert llm.tokenize(TEXT.encode(), add_bos=True, special=True) == ids
    llm.eval(ids)
    a = np.asarray(llm.scores[: len(ids)])
    m = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    with torch.no_grad():
        b = m(torch.tensor([ids])).logits[0].numpy()
    diff = float(np.abs(a - b).max())
    print("max |logit diff| F32 GGUF vs transformers:", diff)
    assert diff <= 1e-3
    llm.close()


def test_chat_template_renders_identically_in_gguf(model_dir, ladder):
    from puyu_lab.models import GGUFModel
    from puyu_lab.models.template import tool_call
    from puyu_lab.models.tokenizer import load_tokenizer

    tok = load_tokenizer(model_dir)
    chat = GGUFModel(ladder["F32"])
    msgs = [{"role": "system", "content": "你是小浦。"}, {"role": "user", "content": "12*7 等于多少？"},
            {"role": "assistant", "content": tool_call("calculator", {"expression": "12*7"})},
            {"role": "environment", "name": "<|plugin|>", "content": '{"result": 84}'},
            {"role": "user", "content": "谢谢"}]
    assert chat.template == tok.chat_template
    hf_ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True, return_dict=False)
    assert chat.prompt_ids(msgs)[1] == hf_ids  # special tokens stay single tokens in llama.cpp too
    for special in ("<|im_start|>", "<|im_end|>", "<|action_start|>", "<|plugin|>"):
        assert len(chat.llm.tokenize(special.encode(), add_bos=False, special=True)) == 1, special
    # greedy replies agree token for token (llama.cpp keeps only the last logits unless logits_all)
    from transformers import AutoModelForCausalLM

    from puyu_lab.models import HFModel

    hf = HFModel(AutoModelForCausalLM.from_pretrained(str(model_dir)), tok)
    q = [{"role": "user", "content": "北京的冬天"}]
    assert chat.reply(q, 12) == hf.reply(q, 12) and chat.reply(q, 12)
    chat.close()


def test_ladder_sizes_fall_and_types_are_real(ladder):
    from puyu_lab.deploy.quantize import LADDER, MAIN, weight_types

    sizes = [ladder[lv].stat().st_size for lv in LADDER]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    for lv in LADDER:
        types = weight_types(ladder[lv])
        assert MAIN[lv] in types, (lv, types)
        if lv.startswith("Q") and lv.endswith(("_K", "_K_M")):
            assert set(types) <= {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}, (lv, types)  # no 32-block or F16 substitute


def test_measurements_of_the_ladder(model_dir, ladder):
    from puyu_lab.deploy.measure import measure_ladder
    from puyu_lab.models.tokenizer import load_tokenizer

    tok = load_tokenizer(model_dir)
    ids = tok(TEXT * 12)["input_ids"][:256]
    files = {lv: ladder[lv] for lv in ("F32", "Q8_0", "Q2_K")}
    files.update({v: f"hf:{v}:{model_dir}" for v in ("HF fp32", "bnb nf4", "torch int8")})
    # and on chat text: conversations scored from their start on the reply tokens only
    from puyu_lab.models.template import encode_chat

    convs = []
    for q, a in [("你是谁？", "我是小浦，由书生学员打造的人工智能助手。"), ("今天天气怎么样？", "今天天气很好，适合出去散步。")]:
        enc = encode_chat(tok, [{"role": "user", "content": q}, {"role": "assistant", "content": a}])
        convs.append((enc.input_ids, enc.trained.index(True)))
    rows, detail = measure_ladder(files, ids, n_ctx=128, decode_tokens=8, chat=convs)
    by = {r.level: r for r in rows}
    assert by["F32"].kl_mean == 0 and by["F32"].top1 == 1
    assert 0 <= by["Q8_0"].kl_mean < by["Q2_K"].kl_mean
    assert by["HF fp32"].kl_mean < 1e-9 and by["HF fp32"].top1 == 1 and by["HF fp32"].backend == "transformers"
    assert by["bnb nf4"].kl_mean > by["Q8_0"].kl_mean and by["bnb nf4"].size_mb < by["HF fp32"].size_mb  # embeddings and lm_head stay fp32
    assert by["torch int8"].size_mb < by["HF fp32"].size_mb / 1.5
    assert len(detail["kl"]["bnb nf4"]) == len(detail["kl"]["Q2_K"]) == len(detail["targets"]) == 2 * 63  # llama-perplexity's n_ctx − 1 − n_ctx/2 per window
    # perplexity: the same figure from llama.cpp's F32 file and transformers' fp32 (a misaligned window or target
    # would move it), and within twice a uniform guess (this barely trained model is near uniform); memory at least
    # half the F32 file's bytes, far under the machine; decode speed within 10x of llama-bench's (same file, threads)
    vocab = len(tok)
    assert by["F32"].ppl == pytest.approx(by["HF fp32"].ppl, rel=1e-4)
    assert all(1 < r.ppl < 2 * vocab and 0 < r.rss_mb < 4096 and r.decode_tps > 0 for r in rows), [r.ppl for r in rows]
    assert by["F32"].rss_mb >= 0.5 * by["F32"].size_mb, (by["F32"].rss_mb, by["F32"].size_mb)
    for r in rows:
        if r.backend == "llama.cpp" and r.bench_tg_tps == r.bench_tg_tps:  # llama-bench ran (not NaN)
            assert r.bench_tg_tps / 10 < r.decode_tps < r.bench_tg_tps * 10, (r.level, r.decode_tps, r.bench_tg_tps)
    # decode speed is measured on a real greedy generation: F32 GGUF and transformers pick the same tokens
    assert by["F32"].greedy == by["HF fp32"].greedy and len(by["F32"].greedy) == 8
    assert by["F32"].kl_chat_mean == 0 and by["F32"].top1_chat == 1 and by["HF fp32"].kl_chat_mean < 1e-9
    assert 0 < by["Q8_0"].kl_chat_mean < by["Q2_K"].kl_chat_mean and all(r.ppl_chat > 1 for r in rows)
    # repeated (mean ± sd), with the threads and the machine's load beside it
    assert all(r.decode_sd == r.decode_sd and r.threads >= 1 and r.load_avg >= 0 for r in rows)
    # the thread count is llama-bench's fastest generation over 1 … n threads on the reference file, and every GGUF
    # row carries llama-bench's own prompt / generation rates at that count (mean ± sd of its repeats)
    sweep = detail["threads_sweep"]
    assert [s["threads"] for s in sweep] == list(range(1, (os.cpu_count() or 1) + 1))
    assert by["F32"].threads == max(sweep, key=lambda s: s["tg_tps"])["threads"]
    for r in rows:
        if r.backend == "llama.cpp":
            assert r.bench_tg_tps > 0 and r.bench_pp_tps > 0 and r.bench_tg_sd >= 0, r
        else:
            assert r.to_dict()["bench_tg_tps"] is None
    # llama-perplexity's KL view: ordered percentiles, nothing but zeros against itself
    for r in rows:
        assert r.kl_median <= r.kl_p99 <= r.kl_p999 <= r.kl_max, r
    assert by["F32"].kl_max == 0 and by["F32"].dp_rms == 0 and by["Q2_K"].dp_rms > by["Q8_0"].dp_rms > 0
    # memory is the model's: llama.cpp's weights buffer is the file's tensors, and what loading adds to
    # the process (not the copied logits, ~3 MB here) follows the file down the ladder
    for lv in ("F32", "Q8_0", "Q2_K"):
        assert abs(by[lv].model_buffer_mb - by[lv].size_mb) < 0.1 * by[lv].size_mb + 0.5, by[lv]
    # (F32 20 MB, Q8_0 5.4, Q2_K 2.3: the 15 MB steps are far above allocator noise)
    assert by["F32"].rss_mb > by["Q8_0"].rss_mb + 5 and by["F32"].rss_mb > by["Q2_K"].rss_mb + 5, \
        [(r.level, r.rss_mb) for r in rows]
    # the KV cache of this context, F32: 2 × 4 layers × 128 positions × 2 key/value heads × 64 × 4 bytes
    assert by["Q2_K"].kv_cache_mb == pytest.approx(2 * 4 * 128 * 2 * 64 * 4 / 2**20)
    # a transformers row has no llama.cpp buffers: not a number, and None in the saved JSON
    assert by["HF fp32"].to_dict()["model_buffer_mb"] is None


def test_kld_stats_agree_with_torch():
    """kld_stats' KL is torch's kl_div (an independent implementation) per position; Δp and the same-top
    share by hand on a case small enough to read."""
    import torch

    from puyu_lab.deploy.measure import kld_stats
    from puyu_lab.models.base import log_softmax

    rng = np.random.default_rng(0)
    ref = log_softmax(rng.normal(size=(500, 50)))
    q = log_softmax(np.log(np.exp(ref)) + rng.normal(scale=0.3, size=(500, 50)))
    targets = rng.integers(0, 50, 500)
    k = kld_stats(ref, q, targets)
    want = torch.nn.functional.kl_div(torch.tensor(q), torch.tensor(ref), log_target=True, reduction="none").sum(-1)
    assert np.allclose(k["kl"], want.numpy(), atol=1e-9)
    assert np.isclose(k["kl_median"], np.median(want.numpy()), rtol=1e-12) and np.isclose(k["kl_max"], float(want.max()), rtol=1e-12)
    ref2 = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]))
    q2 = np.log(np.array([[0.35, 0.45, 0.2], [0.1, 0.5, 0.4]]))
    k2 = kld_stats(ref2, q2, np.array([1, 2]))
    assert k2["top1"] == 0.5  # row 0: top token 0 vs 1; row 1: 1 and 1
    # the next tokens' probabilities: +0.15 (0.30 → 0.45) and +0.10 (0.30 → 0.40)
    assert np.isclose(k2["dp_mean"], 12.5) and np.isclose(k2["dp_rms"], 100 * np.sqrt((0.15**2 + 0.1**2) / 2))


def test_clear_errors(model_dir, ladder, tmp_path):
    from puyu_lab.deploy.converter import convert
    from puyu_lab.models.gguf import check_gguf

    with pytest.raises(InputError, match="no such model directory"):
        convert(tmp_path / "nope", tmp_path / "x.gguf")
    odd = tmp_path / "odd"
    shutil.copytree(model_dir, odd)
    cfg = json.loads((odd / "config.json").read_text())
    cfg["architectures"] = ["FancyNewForCausalLM"]
    (odd / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="does not support the architecture 'FancyNewForCausalLM'"):
        convert(odd, tmp_path / "odd.gguf")
    assert not list(tmp_path.glob("*.gguf*"))  # nothing half-written
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(ladder["Q4_K_M"].read_bytes()[: ladder["Q4_K_M"].stat().st_size // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        check_gguf(cut)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(InputError, match="not a GGUF file"):
        check_gguf(junk)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (from /proc/*/stat, which every Linux has)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def _listening(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    port_hex = f"{port:04X}"
    rows = [ln.split() for ln in open("/proc/net/tcp").read().splitlines()[1:]]
    return [x[1] for x in rows if x[1].endswith(":" + port_hex) and x[3] == "0A"]


def test_server_openai_api_loopback_and_cleanup(ladder):
    from puyu_lab.deploy.serve import Server
    from puyu_lab.models import OpenAIModel

    srv = Server(ladder["Q8_0"], model_alias="tiny").start()
    try:
        assert srv.models()["data"][0]["id"] == "tiny"
        client = OpenAIModel(srv.base_url, "tiny")
        out = client.completion([{"role": "user", "content": "你好"}], max_new_tokens=8)
        assert out["object"] == "chat.completion" and out["usage"]["completion_tokens"] >= 1
        text = out["choices"][0]["message"]["content"]
        pieces = list(client.stream([{"role": "user", "content": "你好"}], max_new_tokens=8))
        print("completion:", repr(text), out["usage"], "stream:", pieces)
        # greedy both times: the stream is the same reply, delivered in pieces as it is generated
        assert text.strip() and "".join(pieces) == text, (pieces, text)
        assert 1 < len(pieces) <= out["usage"]["completion_tokens"], (pieces, out["usage"])
        # the evaluation runner over the endpoint: generation tasks only, choice tasks skipped
        from puyu_lab.models import OpenAIModel
        from puyu_lab.eval.runner import evaluate
        from puyu_lab.eval.tasks import Task

        gen = Task("gen", "generation", [{"prompt": "你好", "answer": ""}], max_new_tokens=4)
        choice = Task("c", "choice", [{"context": "q", "choices": ["a", "b"], "gold": 0}])
        run = evaluate({"api": OpenAIModel(srv.base_url, "tiny")}, [gen, choice], progress_bar=False)
        assert set(run.metrics["api"]) == {"gen"} and run.metrics["api"]["gen"]["score"] == 1.0
        # loopback only: the listening socket is bound to 127.0.0.1
        assert _listening(srv.port) == [f"0100007F:{srv.port:04X}"]
        pid = srv.proc.pid
        server = _children(pid)
        assert server
    finally:
        srv.stop()
    assert not _alive(pid) and not any(_alive(c) for c in server)  # the launcher and the server itself


def test_kernel_environment_cannot_move_the_server_off_loopback(ladder, monkeypatch):
    """Attack: uvicorn takes HOST and PORT from the environment over llama_cpp.server's arguments, and
    the server's settings read API_KEY / CONFIG_FILE from it: a kernel environment with HOST=0.0.0.0
    served the model on every interface (seen before the server's environment was filtered)."""
    from puyu_lab.deploy.serve import Server, _free_port

    decoy = _free_port()
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", str(decoy))
    monkeypatch.setenv("API_KEY", "from-the-environment")
    with Server(ladder["Q4_K_M"]) as srv:
        assert _listening(srv.port) == [f"0100007F:{srv.port:04X}"], _listening(srv.port)
        assert _listening(decoy) == []
        assert srv.models()["data"]  # no key asked: API_KEY from the environment was not taken
        assert "API_KEY" not in open(f"/proc/{srv.proc.pid}/environ").read()


def test_server_outlives_the_thread_that_started_it_and_dies_with_its_kernel(ladder, tmp_path):
    """The deploy panel starts servers from a worker thread: the server must keep running after that
    thread ends (PR_SET_PDEATHSIG watched the thread and killed it at once), and still die with the
    kernel process, killed without any cleanup."""
    script = textwrap.dedent(f"""
        import threading, time
        from puyu_lab.deploy.serve import Server
        box = {{}}
        t = threading.Thread(target=lambda: box.update(s=Server({str(ladder['Q4_K_M'])!r}).start()))
        t.start(); t.join()
        time.sleep(1.5)  # the starting thread is gone
        s = box["s"]
        print(s.proc.pid, s.running and bool(s.models()["data"]), flush=True)
        time.sleep(600)
    """)
    kernel = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid, answers = kernel.stdout.readline().split()
        pid = int(pid)
        assert answers == "True" and _alive(pid)
        server = _children(pid)  # llama_cpp.server itself, under the launcher
        assert server and all(_alive(c) for c in server)
    finally:
        kernel.send_signal(signal.SIGKILL)  # the kernel dies without any cleanup
        kernel.wait()
    for _ in range(50):
        if not _alive(pid) and not any(_alive(c) for c in server):
            break
        time.sleep(0.1)
    assert not _alive(pid) and not any(_alive(c) for c in server)


def test_server_api_key_and_where_its_log_goes(ladder, tmp_path):
    """With an API key a request without it is refused (401); the log goes to the folder named (the lab:
    the workspace's logs/) and stays; without one it is in a private folder that stop() removes."""
    import urllib.error
    import urllib.request

    from puyu_lab.deploy.serve import Server

    with Server(ladder["Q4_K_M"], model_alias="tiny", api_key="s3cret", log_dir=tmp_path / "logs") as srv:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(srv.base_url + "/models", timeout=5)
        assert e.value.code == 401
        bad = urllib.request.Request(srv.base_url + "/models", headers={"Authorization": "Bearer wrong"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(bad, timeout=5)
        assert e.value.code == 401
        assert srv.models()["data"][0]["id"] == "tiny"
        out = srv.client().completion([{"role": "user", "content": "你好"}], max_new_tokens=4)
        assert out["usage"]["completion_tokens"] >= 1
        assert srv.log.parent == tmp_path / "logs"
    assert srv.log.is_file() and "127.0.0.1" in srv.log.read_text()
    srv2 = Server(ladder["Q4_K_M"]).start()
    try:
        folder = srv2.log.parent
        assert folder.stat().st_mode & 0o077 == 0  # nobody else can read it or guess a file into it
    finally:
        srv2.stop()
    assert not folder.exists()


def test_kv_cache_levels_measured_and_sized_as_llama_cpp_stores_them(model_dir, ladder):
    """The KV-cache types on one weight level: KL from the F32 cache grows as the cache's bits fall, and
    each type's bytes per position equal what llama.cpp's own saved state grows by per cached token."""
    import llama_cpp

    from puyu_lab.deploy.measure import KV_TYPES, kv_cache_levels
    from puyu_lab.models.gguf import load
    from puyu_lab.models.tokenizer import load_tokenizer

    tok = load_tokenizer(model_dir)
    ids = tok(TEXT * 12)["input_ids"][:256]
    rows = kv_cache_levels(ladder["Q8_0"], ids, n_ctx=128, contexts=(4096,))
    assert [(r["kv_type"], r["flash_attn"]) for r in rows] == [("F32", False), ("F32", True), ("F16", True),
                                                               ("Q8_0", True), ("Q4_0", True)]
    by = {(r["kv_type"], r["flash_attn"]): r for r in rows}
    assert by[("F32", False)]["kl_mean"] == 0 and by[("F32", True)]["kl_mean"] < 1e-4
    assert 0 < by[("Q8_0", True)]["kl_mean"] < by[("Q4_0", True)]["kl_mean"]
    overhead = set()
    for name, ggml_type in KV_TYPES.items():
        llm = load(ladder["Q8_0"], n_ctx=128, type_k=ggml_type, type_v=ggml_type, flash_attn=True)
        try:
            llm.eval(ids[:40])
            a = llama_cpp.llama_state_get_size(llm._ctx.ctx)
            llm.eval(ids[40:100])
            b = llama_cpp.llama_state_get_size(llm._ctx.ctx)
        finally:
            llm.close()
        # the state grows per token by the cached keys and values plus a few bytes of cell metadata
        # (position, sequence) that do not depend on the cache's type
        overhead.add((b - a) / 60 - by[(name, True)]["bytes_per_position"])
        assert by[(name, True)]["mb_at_4096"] == by[(name, True)]["bytes_per_position"] * 4096 / 2**20
    assert len(overhead) == 1 and 0 <= overhead.pop() <= 32


def test_llama_server_batches_on_loopback_with_its_key_and_ignores_the_kernels_environment(ladder, tmp_path,
                                                                                         monkeypatch):
    """llama.cpp's own llama-server (continuous batching, parallel slots) under the same launcher: loopback only,
    an API key it enforces, its log where it was asked, gone on stop. Attack: llama-server reads every option from
    LLAMA_ARG_* and its key from LLAMA_API_KEY — a kernel environment with LLAMA_ARG_HOST=0.0.0.0 and a key of its
    own must not reach it (without the filter, LLAMA_API_KEY made every request of ours fail with 401)."""
    import urllib.error
    import urllib.request

    from puyu_lab.deploy.serve import Server, _free_port, concurrency_bench

    decoy = _free_port()
    monkeypatch.setenv("LLAMA_ARG_HOST", "0.0.0.0")
    monkeypatch.setenv("LLAMA_ARG_PORT", str(decoy))
    monkeypatch.setenv("LLAMA_API_KEY", "from-the-environment")
    with Server(ladder["Q4_K_M"], kind="llama-server", parallel=4, model_alias="tiny", api_key="s3cret",
                log_dir=tmp_path / "logs") as srv:
        assert srv.command()[0].endswith("llama-server") and "-np" in srv.command()
        assert _listening(srv.port) == [f"0100007F:{srv.port:04X}"] and _listening(decoy) == []
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(srv.base_url + "/models", timeout=5)
        assert e.value.code == 401
        env = open(f"/proc/{_children(srv.proc.pid)[0]}/environ", "rb").read().decode(errors="replace")
        assert "from-the-environment" not in env and "LLAMA_ARG_HOST" not in env
        client = srv.client()
        out = client.completion([{"role": "user", "content": "你好"}], max_new_tokens=8)
        assert out["usage"]["completion_tokens"] >= 1
        props = json.loads(urllib.request.urlopen(urllib.request.Request(
            srv.base_url.removesuffix("/v1") + "/props", headers={"Authorization": "Bearer s3cret"}), timeout=5).read())
        assert props["total_slots"] == 4
        rows = concurrency_bench(client, ["你好", "你是谁？"], clients=(1, 4), requests_per_client=2, max_new_tokens=8)
        assert [r["requests"] for r in rows] == [2, 8] and all(r["failed"] == 0 for r in rows)
        assert all(0 < r["ttft_p50_s"] <= r["ttft_p95_s"] and 0 < r["p50_s"] <= r["p95_s"] for r in rows)
        assert all(r["tokens_per_s"] > 0 for r in rows)
        pid, server = srv.proc.pid, _children(srv.proc.pid)
    assert not _alive(pid) and not any(_alive(c) for c in server)
    assert srv.log.parent == tmp_path / "logs" and srv.log.is_file()


def test_a_tools_output_cut_inside_a_utf8_character_is_read(tmp_path):
    """llama.cpp prints vocabulary pieces byte by byte; a byte-fallback piece is part of one UTF-8 character (a CI
    run's lab 06 failed on ``0xc2`` followed by an ASCII byte). The tool's figures must still be read."""
    from puyu_lab.deploy.llamatools import _run

    script = tmp_path / "tool.py"
    script.write_text("import sys\nsys.stdout.buffer.write(b\"print_info: LF token = 13 '\\xc2'\\nMean PPL(Q) : 4.5\\n\")\n")
    out = _run([sys.executable, str(script)])
    assert "Mean PPL(Q) : 4.5" in out and "\ufffd" in out
