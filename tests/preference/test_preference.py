"""The preference stage: pairs from the chain (no leak into the held-out side), trl's tokenization,
DPO and ORPO runs with their artifacts and live metrics, custom pair files checked line by line."""
import json
import subprocess
import sys

import pytest

from puyu_lab.errors import InputError
from puyu_lab.preference.pairs import load_custom_pairs, prompt_key

from .small import SMALL, pairs_workspace, small_cfg


@pytest.fixture(scope="module")
def pref_ws(layers, tmp_path_factory):
    return pairs_workspace(layers, tmp_path_factory.mktemp("pref") / "ws")


def test_pairs_come_from_the_chain_and_never_leak(pref_ws):
    from puyu_lab.artifacts import load_pref_pairs, load_sft_data

    train, held = load_pref_pairs(pref_ws, "train"), load_pref_pairs(pref_ws, "heldout")
    for part in (train, held):
        assert {p["source"] for p in part} == {"identity", "sentiment", "tool", "notool"}
        for p in part:
            assert p["chosen"] != p["rejected"] and p["chosen"][0]["role"] == "assistant"
            assert p["prompt"][-1]["role"] == "user"
    assert not {prompt_key(p) for p in held} & {prompt_key(p) for p in train}, "a held-out prompt was trained on"
    # identity: the held-out paraphrases of sft/data, chosen = the assistant's own introduction
    name = pref_ws.get("sft/data").metrics["assistant_name"]
    ident = [p for p in held if p["source"] == "identity"]
    assert {p["prompt"][0]["content"] for p in ident} == {h["prompt"] for h in load_sft_data(pref_ws, "selfcog_heldout")}
    assert all(name in p["chosen"][0]["content"] and name not in p["rejected"][0]["content"] for p in ident)
    # tool: chosen is the call on the held-out task's own expression; rejected a wrong direct answer
    exprs = {t["expression"] for t in load_sft_data(pref_ws, "arithmetic_heldout")}
    calc = [p for p in held if p.get("tool") == "calculator"]
    assert calc and all(p["expression"] in exprs and "<|action_start|>" in p["chosen"][0]["content"]
                        and str(p["result"]) not in p["rejected"][0]["content"] for p in calc)
    assert pref_ws.get("pref/data").metrics["heldout_tool"] == SMALL.heldout_tool
    # notool: a direct answer chosen over a needless call, on prompts that offer the tools
    for p in [p for p in held if p["source"] == "notool"]:
        assert p["prompt"][1].get("name") == "<|plugin|>" and "<|action_start|>" in p["rejected"][0]["content"]
        assert "<|action_start|>" not in p["chosen"][0]["content"]


def test_encode_pair_is_trls_tokenization(pref_ws):
    """The held-out scores use exactly the ids trl's DPOTrainer and ORPOTrainer train on: the answer
    and its closing <|im_end|>, nothing after it (no template newline, no </s>)."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from puyu_lab.artifacts import load_pref_pairs
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.preference.scoring import encode_pair, trl_rows, trl_tokenizer

    path = pref_ws.get("model/sft").path
    tok = load_tokenizer(path)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    pairs = load_pref_pairs(pref_ws, "heldout")
    model = AutoModelForCausalLM.from_pretrained(str(path))
    rows = datasets.Dataset.from_list(trl_rows(tok, pairs))
    trainer = DPOTrainer(model=model, args=DPOConfig(output_dir=str(pref_ws.root / "t"), report_to="none",
                                                      use_cpu=True, max_length=None),
                         train_dataset=rows, processing_class=trl_tokenizer(tok))
    orpo = ORPOTrainer(model=model, args=ORPOConfig(output_dir=str(pref_ws.root / "t"), report_to="none",
                                                    use_cpu=True, max_length=4096),
                       train_dataset=rows, processing_class=trl_tokenizer(tok))
    for p, row, orow in zip(pairs, trainer.train_dataset, orpo.train_dataset):
        pr, c, r = encode_pair(tok, p)
        assert (pr, c, r) == (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"])
        assert c[-1] == r[-1] == im_end and pr[0] == tok.bos_token_id and pr[1] != tok.bos_token_id
        assert orow["chosen_input_ids"] == pr + c and orow["rejected_input_ids"] == pr + r
        assert orow["chosen_labels"][len(pr):] == c
    # cut to max_length as trl's collator cuts (keep_start): the completion tokens it trains on
    rows = list(trainer.train_dataset)
    cut = 0
    for limit in (40, 60):
        collate = type(trainer.data_collator)(pad_token_id=tok.pad_token_id, max_length=limit)
        for p, row in zip(pairs, rows):
            if len(row["prompt_ids"]) >= limit:
                continue  # trl drops such a pair from training
            b = collate([row])
            _, c, r = encode_pair(tok, p, limit)
            for i, want in ((0, c), (1, r)):
                got = b["input_ids"][i][b["completion_mask"][i].bool()].tolist()
                assert got == want
            cut += len(c) < len(row["chosen_ids"])
    assert cut, "no pair was long enough to be cut: the check proved nothing"


def test_score_pairs_is_the_sum_of_completion_log_probs(pref_ws):
    import torch

    from puyu_lab.artifacts import load_pref_pairs
    from puyu_lab.models import HFModel
    from puyu_lab.preference.scoring import encode_pair, score_pairs

    m = HFModel.load("model/sft", ws=pref_ws)
    p = load_pref_pairs(pref_ws, "heldout")[0]
    s = score_pairs(m, m.tok, [p])[0]
    prompt, chosen, _ = encode_pair(m.tok, p)
    ids = torch.tensor([prompt + chosen])
    with torch.no_grad():
        logp = torch.log_softmax(m.model(ids).logits[0, :-1].float(), -1)
    direct = sum(logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(chosen))
    assert s["logp_chosen"] == pytest.approx(direct, abs=1e-3)
    assert s["correct"] == (s["logp_chosen"] > s["logp_rejected"])


def test_dpo_and_orpo_run_with_live_metrics(pref_ws):
    from puyu_lab.eval.builtin import builtin_tasks
    from puyu_lab.eval.config import EvalConfig
    from puyu_lab.eval.entry import model_names
    from puyu_lab.i18n import t
    from puyu_lab.panels.preference import PreferencePanel, inspect_pairs
    from puyu_lab.preference.train import load_heldout_scores, train

    panel = PreferencePanel()
    events = []

    def on_event(e):
        events.append(e)
        panel(e)

    res = train(pref_ws, small_cfg(max_steps=4), on_event=on_event)
    panel.flush()
    assert res.steps == 4 and not res.stopped
    art = pref_ws.get("model/dpo")
    m = art.metrics
    assert m["method"] == "dpo" and set(m["by_source"]) == {"identity", "sentiment", "tool", "notool", "all"}
    assert m["by_source"]["all"]["n"] == len(load_heldout_scores(pref_ws)) == m["heldout_pairs"]
    assert "eval_rewards/accuracies" in m["trl_eval"]
    logs = [e for e in events if e.kind == "log"]
    assert logs and all("rewards/margins" in e["extra"] for e in logs)
    assert panel.pref_points["margins"] == len(logs) and panel.pref_points["acc_eval"] >= 1
    assert "identity" in panel.source_html.value or "身份" in panel.source_html.value
    assert "logp" not in inspect_pairs(load_heldout_scores(pref_ws), limit=3).text  # a readable text view
    assert (art.path / "tokenizer.model").is_file() and (art.path / "model.safetensors").is_file()

    orpo_panel = PreferencePanel("XTuner · ORPO")
    res = train(pref_ws, small_cfg(method="orpo", max_steps=3), on_event=orpo_panel)
    assert res.steps == 3 and pref_ws.get("model/orpo").metrics["method"] == "orpo"
    # each panel titles the rewards as its run defines them (ORPO has no reference model)
    assert panel.pref_fig.layout.annotations[0].text == t("rewards_dpo")
    assert orpo_panel.pref_fig.layout.annotations[0].text == t("rewards_orpo")
    # the eval lab picks both up, with the held-out pairs as one choice task per source
    assert model_names(pref_ws, EvalConfig()) == ["model/base", "model/sft", "model/dpo", "model/orpo"]
    names = [t.name for t in builtin_tasks(pref_ws, n=4, ppl_docs=1)]
    assert {"pref_identity", "pref_sentiment", "pref_tool", "pref_notool", "tool_use"} <= set(names)


def test_stop_ends_a_run_early(pref_ws):
    from puyu_lab.events import StopFlag
    from puyu_lab.preference.train import train

    stop = StopFlag()

    def on_event(e):
        if e.kind == "log" and e["step"] >= 1:
            stop.set()

    res = train(pref_ws, small_cfg(max_steps=20, eval_every=0), on_event=on_event, stop=stop, save=False)
    assert res.stopped and res.steps < 20


BAD_LINES = [
    ('{"prompt": "hi", "chosen": "hello"}', "field 'rejected' is missing"),
    ('{"prompt": "hi", "chosen": "same", "rejected": "same"}', "are the same"),
    ('{"prompt": "hi", "chosen": "", "rejected": "no"}', "'chosen' is an empty string"),
    ('{"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "chosen": "x", '
     '"rejected": "y"}', "prompt ends with an assistant message"),
    ('{"prompt": "q", "chosen": [{"role": "user", "content": "x"}], "rejected": "y"}', "completion holds assistant"),
    ('{"prompt": [{"role": "robot", "content": "q"}], "chosen": "x", "rejected": "y"}', "role is 'robot'"),
    ('{"prompt": "q", "chosen": "<|im_end|>x", "rejected": "y"}', "the chat template adds those"),
    ('{"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}], '
     '"rejected": "y"}', "'chosen' holds 2 messages"),
    ('{"prompt": "q", "chosen": "x", "rejected": [{"role": "robot", "content": "y"}]}', "completion holds assistant"),
    ('[1, 2]', "expected a JSON object"),
    ('{"prompt": "broken', "invalid JSON"),
]


def test_custom_pair_file_one_error_per_bad_line(tmp_path):
    good = [json.dumps({"prompt": "你好", "chosen": "你好！我是小浦。", "rejected": "走开。"}, ensure_ascii=False),
            json.dumps({"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
                        "chosen": [{"role": "assistant", "content": "good"}],
                        "rejected": [{"role": "assistant", "content": "bad"}]})]
    f = tmp_path / "pairs.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + "\n".join(good + [line for line, _ in BAD_LINES]).encode())  # a BOM is fine
    pairs, bad = load_custom_pairs(f)
    assert len(pairs) == 2 and pairs[1]["prompt"][0]["role"] == "system"
    assert [b.line for b in bad] == list(range(3, 3 + len(BAD_LINES)))
    for b, (_, why) in zip(bad, BAD_LINES):
        assert why in b.reason, (b, why)
    out = subprocess.run([sys.executable, "-m", "puyu_lab", "preference", "check", str(f)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1 and out.stdout.count(f"{f}:line ") == len(BAD_LINES), out.stdout


def test_bad_pair_files_fail_clearly_and_write_nothing(pref_ws, tmp_path):
    from dataclasses import replace

    from puyu_lab.preference.mixture import prepare_pairs

    before = pref_ws.get("pref/data").id
    all_bad = tmp_path / "bad.jsonl"
    all_bad.write_text("\n".join(line for line, _ in BAD_LINES[:3]) + "\n", encoding="utf-8")
    gbk = tmp_path / "gbk.jsonl"
    gbk.write_bytes('{"prompt": "a", "chosen": "b", "rejected": "c"}\n'.encode() + '{"prompt": "你好"}'.encode("gbk"))
    cases = [(all_bad, r"bad\.jsonl: no valid pair \(3 bad: line 1: field 'rejected' is missing"),
             (gbk, r"gbk\.jsonl:2: bytes at offset \d+ are not UTF-8"),
             (tmp_path / "pairs.json", r"pairs\.json: a pair file is JSONL"),
             (tmp_path / "missing.jsonl", r"missing\.jsonl: no such pair file")]
    (tmp_path / "pairs.json").write_text("[]", encoding="utf-8")
    for path, msg in cases:
        with pytest.raises(InputError, match=msg):
            prepare_pairs(pref_ws, replace(small_cfg(), custom_pairs=str(path)))
        assert pref_ws.get("pref/data").id == before, "a failed build replaced pref/data"
    assert not list((pref_ws.root / ".store").glob("*.partial"))


def test_custom_pairs_join_the_mixture_with_a_held_out_share(pref_ws, tmp_path):
    from dataclasses import replace

    from puyu_lab.artifacts import load_pref_pairs
    from puyu_lab.preference.mixture import prepare_pairs

    f = tmp_path / "mine.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"问题{i}", "chosen": f"好的回答{i}", "rejected": "不知道"},
                                      ensure_ascii=False) for i in range(20)) + "\n{bad\n", encoding="utf-8")
    art = prepare_pairs(pref_ws, replace(small_cfg(), custom_pairs=str(f)))
    assert art.metrics["custom_rejected"] == 1 and "mine.jsonl:21:" in (art.path / "custom_errors.txt").read_text()
    train = [p for p in load_pref_pairs(pref_ws, "train") if p["source"] == "custom"]
    held = [p for p in load_pref_pairs(pref_ws, "heldout") if p["source"] == "custom"]
    assert len(train) + len(held) == 20 and held
    assert not {prompt_key(p) for p in held} & {prompt_key(p) for p in train}


def test_custom_pairs_too_long_for_max_length_fail_naming_their_lines(pref_ws, tmp_path):
    from dataclasses import replace

    from puyu_lab.preference.train import train

    f = tmp_path / "long.jsonl"
    rows = [{"prompt": f"问题{i}", "chosen": "好", "rejected": "坏"} for i in range(6)]
    rows[1]["prompt"] = "很长的问题，" * 80
    rows[4]["chosen"] = "很长的回答，" * 80
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    before = pref_ws.get("model/sft").id
    with pytest.raises(InputError) as err:
        train(pref_ws, replace(small_cfg(max_steps=1), custom_pairs=str(f)), save=False)
    msg = str(err.value)
    assert "long.jsonl: 2 pair(s) do not fit max_length=160" in msg
    assert "line 2: the prompt is" in msg and "line 5: prompt + answer is" in msg, msg
    assert pref_ws.get("model/sft").id == before


def test_pairs_are_rebuilt_when_their_inputs_change_and_stale_models_leave_the_eval(pref_ws, tmp_path):
    from dataclasses import replace

    from puyu_lab.eval.config import EvalConfig
    from puyu_lab.eval.entry import model_names, parents_for
    from puyu_lab.preference.mixture import pairs_current, prepare_pairs

    f = tmp_path / "mine.jsonl"
    f.write_text(json.dumps({"prompt": "q", "chosen": "good", "rejected": "bad"}) + "\n", encoding="utf-8")
    cfg = replace(small_cfg(), custom_pairs=str(f))
    art = prepare_pairs(pref_ws, cfg)
    assert pairs_current(pref_ws, cfg).id == art.id
    f.write_text(json.dumps({"prompt": "q", "chosen": "better", "rejected": "bad"}) + "\n", encoding="utf-8")
    assert pairs_current(pref_ws, cfg) is None, "an edited pair file must be read again"
    assert pairs_current(pref_ws, small_cfg()) is None, "another mixture must be rebuilt"
    # model/dpo and model/orpo were trained on an earlier pref/data: the eval leaves them out, saying why
    with pytest.warns(UserWarning, match=r"model/dpo was made from an earlier pref/data.*04_preference"):
        names = model_names(pref_ws, EvalConfig())
    assert names == ["model/base", "model/sft"]
    assert [a.name for a in parents_for(pref_ws, EvalConfig())][-1] == "pref/data"


def test_lora_dpo_runs_and_saves_a_merged_model(pref_ws):
    """The gpu profile's path on the tiny model: LoRA on every linear layer, the reference is the model
    with its adapter switched off (trl), the saved model/dpo is the merged full model."""
    from transformers import AutoModelForCausalLM

    from puyu_lab.preference.train import train

    res = train(pref_ws, small_cfg(tuning="lora", lora_r=4, lora_alpha=8, max_steps=2, eval_every=0))
    art = pref_ws.get("model/dpo")
    assert res.steps == 2 and art.metrics["tuning"] == "lora"
    merged = AutoModelForCausalLM.from_pretrained(str(art.path))
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert not (art.path / "adapter_config.json").exists()


def test_the_eval_labs_preference_tasks_agree_with_the_stages_scores(pref_ws):
    """pref_<source> in the eval lab (lm-eval's way: rendered context, choice + <|im_end|>) ranks the
    pairs as the preference stage's held-out scores do (trl's tokenization)."""
    from puyu_lab.artifacts import load_pref_pairs
    from puyu_lab.eval.builtin import preference_tasks
    from puyu_lab.eval.runner import run_task
    from puyu_lab.models import HFModel
    from puyu_lab.preference.scoring import accuracy_by_source, score_pairs

    m = HFModel.load("model/sft", ws=pref_ws)
    pairs = load_pref_pairs(pref_ws, "heldout")
    by = accuracy_by_source(pairs, score_pairs(m, m.tok, pairs))
    tasks = preference_tasks(pairs)
    assert {t.name for t in tasks} == {f"pref_{s}" for s in by if s != "all"}
    for t in tasks:
        metrics, _ = run_task(m, t)
        src = t.name.removeprefix("pref_")
        assert metrics["acc"] == pytest.approx(by[src]["accuracy"], abs=1e-9), (src, metrics, by[src])


def test_the_labelled_only_head_equals_trls_fused_head(pref_ws):
    """On a CPU the DPO trainer's fused LM head scores only the answers' tokens (preference.lmhead): its
    per-token log-probabilities, entropy, mean logits, top-1, loss and gradients equal trl's own head's, which
    scores every position, on a real padded DPO batch of model/sft; and the trainer's models get it."""
    import copy

    import datasets
    import torch
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer
    from trl.trainer.utils import add_fused_lm_head

    from puyu_lab.artifacts import load_pref_pairs
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.preference.lmhead import compact_trainer_heads, score_labelled_only
    from puyu_lab.preference.scoring import trl_rows, trl_tokenizer

    path = pref_ws.get("model/sft").path
    tok = load_tokenizer(path)
    rows = datasets.Dataset.from_list(trl_rows(tok, load_pref_pairs(pref_ws, "heldout")[:6]))
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(str(path)),
                         args=DPOConfig(output_dir=str(pref_ws.root / "t"), report_to="none", use_cpu=True),
                         train_dataset=rows, processing_class=trl_tokenizer(tok))
    batch = trainer.data_collator(list(trainer.train_dataset))
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    assert (labels[:, 1:] == -100).float().mean() > 0.3, "nothing to leave out: the check proved nothing"

    outputs = ("log_probs", "entropy", "mean_logits", "is_top1")
    theirs = AutoModelForCausalLM.from_pretrained(str(path))
    add_fused_lm_head(theirs, outputs=outputs)
    ours = copy.deepcopy(theirs)
    assert score_labelled_only(ours, outputs)
    got = []
    for m in (theirs, ours):
        out = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels, fused_lm_head=True)
        out.loss.backward()
        got.append((out, m.lm_head.weight.grad, m.model.layers[0].mlp.up_proj.weight.grad))
    (a, ga, ha), (b, gb, hb) = got
    for name in outputs + ("label_mask",):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        assert torch.allclose(x.float(), y.float(), atol=1e-5), name
    assert torch.allclose(a.loss, b.loss, atol=1e-6)
    assert torch.allclose(ga, gb, atol=1e-6) and torch.allclose(ha, hb, atol=1e-6)
    # without the fused flag it is the model's own forward (generation is unchanged)
    plain = ours(input_ids=batch["input_ids"][:1]).logits
    assert torch.equal(plain, theirs(input_ids=batch["input_ids"][:1]).logits)

    assert compact_trainer_heads(trainer)
    assert trainer.model.forward.scores_labelled_only and trainer.ref_model.forward.scores_labelled_only


@pytest.mark.parametrize("remove", ["del trl.kernels.chunked_logprob._use_triton",
                                    "del trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE"])
def test_a_trl_without_the_private_names_fails_at_import_with_the_version_range(remove):
    """The fused-head patch builds on two private names of trl: without them the import fails at once, naming the
    range the project pins and what to do."""
    import subprocess
    import sys

    code = f"import trl, trl.kernels.chunked_logprob, trl.trainer.utils\n{remove}\nimport puyu_lab.preference.lmhead"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "trl>=1.16,<1.17" in r.stderr and "make setup" in r.stderr, r.stderr[-2000:]
