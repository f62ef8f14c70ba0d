"""The pretraining optimizer: which parameters Muon and AdamW own, and its checkpoint state."""
import pytest
import torch

from puyu_lab.pretrain.model import ModelPreset, llama_config
from puyu_lab.pretrain.optim import MuonAdamW, build_optimizer, zero_init_residual_projections
from puyu_lab.pretrain.train import PretrainConfig

PRESET = ModelPreset(hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=256,
                     vocab_size=300, block_size=16)


def model(tied: bool = False):
    from transformers import LlamaForCausalLM

    cfg = llama_config(PRESET)
    cfg.tie_word_embeddings = tied
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


def owners(opt: MuonAdamW) -> dict[int, str]:
    seen = {}
    for name, inner in (("adamw", opt.adamw), ("muon", opt.muon)):
        for g in inner.param_groups:
            for p in g["params"]:
                assert id(p) not in seen, "a parameter is in two groups"
                seen[id(p)] = name
    return seen


@pytest.mark.parametrize("tied", [False, True])
def test_muon_owns_the_decoder_matrices_and_adamw_the_rest(tied):
    m = model(tied)
    cfg = PretrainConfig(preset=PRESET, learning_rate=1e-3, muon_lr=0.02, embedding_lr=0.05)
    opt = build_optimizer(m, cfg)
    seen = owners(opt)
    assert set(seen) == {id(p) for p in m.parameters()}, "every parameter is trained, once"
    for name, p in m.named_parameters():
        want = "muon" if p.ndim == 2 and ".layers." in name else "adamw"
        assert seen[id(p)] == want, name
    emb = m.get_input_embeddings().weight
    assert [g["lr"] for g in opt.param_groups if any(q is emb for q in g["params"])] == [0.05]
    assert opt.param_groups[0]["lr"] == 1e-3, "the first group (what the Trainer logs) is the head's"


def test_adamw_recipe_decays_matrices_only():
    m = model()
    opt = build_optimizer(m, PretrainConfig(preset=PRESET, optimizer="adamw", weight_decay=0.1))
    assert isinstance(opt, torch.optim.AdamW)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] for p in g["params"]}
    assert decayed == {id(p) for p in m.parameters() if p.ndim == 2}


def test_unknown_optimizer_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="optimizer='sgd'.*'muon'.*'adamw'"):
        PretrainConfig(optimizer="sgd")


def test_state_round_trips_and_foreign_state_is_refused():
    m = model()
    zero_init_residual_projections(m)
    assert all(not p.any() for n, p in m.named_parameters() if n.endswith(("o_proj.weight", "down_proj.weight")))
    opt = build_optimizer(m, PretrainConfig(preset=PRESET))
    x = torch.randint(0, 300, (2, 16))
    m(input_ids=x, labels=x).loss.backward()
    opt.step()
    state = opt.state_dict()
    assert set(state) == {"adamw", "muon"} and state["muon"]["state"], "both inner states are saved"
    fresh = build_optimizer(model(), PretrainConfig(preset=PRESET))
    fresh.load_state_dict(state)
    assert fresh.state_dict()["muon"]["state"][0]["momentum_buffer"].equal(state["muon"]["state"][0]["momentum_buffer"])
    sched = torch.optim.lr_scheduler.LambdaLR(fresh, lambda step: 0.5)  # the Trainer's scheduler drives all groups
    assert [g["lr"] for g in fresh.param_groups] == [g["initial_lr"] * 0.5 for g in fresh.param_groups]
    del sched
    with pytest.raises(ValueError, match="not a MuonAdamW checkpoint"):
        fresh.load_state_dict(torch.optim.AdamW(model().parameters()).state_dict())


def test_muon_in_bf16_equals_torch_muon_and_fp32_follows_the_same_path():
    """Our Muon with bf16 Newton–Schulz is torch.optim.Muon step for step; in fp32 it stays close
    (the same iterations, only more precise) and is what AVX2 machines run."""
    from puyu_lab.pretrain.optim import Muon

    torch.manual_seed(0)
    w0 = torch.randn(64, 96)
    grads = [torch.randn(64, 96) for _ in range(3)]
    runs = {}
    for name, make in (("torch", lambda p: torch.optim.Muon([p], lr=0.02, adjust_lr_fn="original")),
                       ("bf16", lambda p: Muon([p], lr=0.02, adjust_lr_fn="original", ns_dtype="bf16")),
                       ("fp32", lambda p: Muon([p], lr=0.02, adjust_lr_fn="original", ns_dtype="fp32"))):
        p = torch.nn.Parameter(w0.clone())
        opt = make(p)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        runs[name] = p.detach()
    assert torch.equal(runs["bf16"], runs["torch"])
    moved = (runs["torch"] - w0).norm()
    assert (runs["fp32"] - runs["torch"]).norm() < 0.05 * moved
    assert not torch.equal(runs["fp32"], runs["torch"])  # it really ran in another dtype
    with pytest.raises(ValueError, match="ns_dtype"):
        Muon([torch.nn.Parameter(w0.clone())], lr=0.02, ns_dtype="fp8")


def test_build_optimizer_takes_the_newton_schulz_dtype():
    cfg = PretrainConfig(preset=PRESET)
    assert build_optimizer(model(), cfg, ns_dtype="fp32").muon.ns_dtype == "fp32"
    assert build_optimizer(model(), cfg, ns_dtype="bf16").muon.ns_dtype == "bf16"


def test_samples_with_the_kv_cache_equal_re_encoding():
    from puyu_lab.pretrain.train import generate_samples

    class Tok:  # ids as characters: enough for a model that never saw text
        eos_token_id = 0

        def __call__(self, text, return_tensors=None):
            ids = [[1 + (ord(c) % 250) for c in text]]
            return {"input_ids": torch.tensor(ids)}

        def decode(self, ids, skip_special_tokens=True):
            return ",".join(str(int(i)) for i in ids)

    m = model()
    for p in m.parameters():  # a trained-looking model: residual projections are not zero here
        torch.nn.init.normal_(p, std=0.05)
    a = generate_samples(m, Tok(), ["ab", "xyz"], 12, seed=3, use_cache=True)
    b = generate_samples(m, Tok(), ["ab", "xyz"], 12, seed=3, use_cache=False)
    assert a == b and all(len(x.split(",")) > 3 for x in a)


def test_muon_batches_same_shape_matrices_as_torch_does_them_one_by_one():
    """Several matrices of two shapes (a tall one among them): the batched Newton–Schulz gives what
    torch.optim.Muon gives matrix by matrix, to bf16's rounding."""
    from puyu_lab.pretrain.optim import Muon

    torch.manual_seed(1)
    shapes = [(64, 96), (64, 96), (96, 64), (32, 32), (64, 96)]
    w0 = [torch.randn(s) for s in shapes]
    grads = [[torch.randn(s) for s in shapes] for _ in range(3)]
    out = {}
    for name, make in (("torch", lambda ps: torch.optim.Muon(ps, lr=0.02, adjust_lr_fn="original")),
                       ("ours", lambda ps: Muon(ps, lr=0.02, adjust_lr_fn="original", ns_dtype="bf16"))):
        ps = [torch.nn.Parameter(w.clone()) for w in w0]
        opt = make(ps)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
        out[name] = [p.detach() for p in ps]
    for ours, ref, w in zip(out["ours"], out["torch"], w0):
        assert (ours - ref).norm() < 0.02 * (ref - w).norm()


@pytest.mark.parametrize("remove", ["del m._adjust_lr", "del torch.optim.Muon._init_group"])
def test_a_torch_without_the_private_names_fails_at_import_with_the_version_range(remove):
    """Muon here builds on two private names of torch: without them the import fails at once, naming the range."""
    import subprocess
    import sys

    code = f"import torch, torch.optim._muon as m\n{remove}\nimport puyu_lab.pretrain.optim"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "torch>=2.9,<2.14" in r.stderr and "make setup" in r.stderr
