"""The pretraining optimizer: Muon for the hidden weight matrices, AdamW for the rest.

Muon (``torch.optim.Muon``) orthogonalises each matrix's momentum (Newton–Schulz), so every
direction of a weight matrix learns at the same rate. On the quick budget (~1 M tokens, 2 CPU
cores) it takes the tiny model well past the unigram plateau where AdamW still sits: in
``make bench`` (bench_pretrain, "what the optimizer buys") the quick run's held-out loss ends well below
AdamW's alone (same model, data, schedule and seed), although a Muon step costs more time. Embeddings, the
output head and the norm weights are not hidden matrices and stay with AdamW (the embeddings at a higher
rate: each row learns only when its token occurs).

``MuonAdamW`` is one ``torch.optim.Optimizer`` to the HF Trainer, its LR scheduler (which scales
every group by the same cosine factor) and its checkpoints (``optimizer.pt`` holds both states),
so Stop/Resume and ``accelerate launch`` work unchanged.

``Muon`` here is ``torch.optim.Muon`` with one change: the dtype of its Newton–Schulz iterations.
torch's casts the momentum to bf16 first, hard-coded; on a CPU without native bf16 (AVX2) that
made a quick pretraining step many times slower than AdamW (README, Profiles; `make bench` times both). The
subclass runs the same five iterations with the same coefficients in the dtype :mod:`puyu_lab.numerics` picks
for the machine (bf16 where native, fp32 elsewhere), keeping torch's state, groups and learning-rate rule.
"""
from __future__ import annotations

import torch

# private names of torch's Muon this module builds on (tested with torch 2.9–2.13): a torch that lacks them fails
# here, at import, with what to do — not deep inside a training run
_TORCH_RANGE = "torch>=2.9,<2.14"
try:
    from torch.optim._muon import _adjust_lr
except ImportError as e:
    raise ImportError(f"puyu_lab.pretrain.optim uses torch.optim._muon._adjust_lr, a private name this torch "
                      f"({torch.__version__}) does not have: install {_TORCH_RANGE!r} (make setup does), or port "
                      "Muon.step in puyu_lab/pretrain/optim.py to this torch") from e
if not hasattr(getattr(torch.optim, "Muon", None), "_init_group"):
    raise ImportError(f"puyu_lab.pretrain.optim subclasses torch.optim.Muon and uses its private _init_group, which this "
                      f"torch ({torch.__version__}) does not have: install {_TORCH_RANGE!r} (make setup does)")


def newton_schulz(grad: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float,
                  dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """torch.optim.Muon's quintic Newton–Schulz orthogonalisation, computed in ``dtype``; ``grad``
    may be one matrix or a stack of same-shape matrices (batch first), each orthogonalised alone."""
    a, b, c = coefficients
    x = grad.to(dtype)
    tall = grad.size(-2) > grad.size(-1)
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # spectral norm at most 1
    fma = torch.baddbmm if x.dim() == 3 else torch.addmm  # beta·input + alpha·(m1 @ m2), one kernel
    for _ in range(steps):
        gram = x @ x.mT
        x = fma(x, fma(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


def _closure_loss(closure):
    """An optimizer step's closure, evaluated with gradients on (torch's convention)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class Muon(torch.optim.Muon):
    """``torch.optim.Muon`` whose Newton–Schulz iterations run in ``ns_dtype`` ("bf16" or "fp32")."""

    def __init__(self, params, *, ns_dtype: str = "bf16", **kw):
        if ns_dtype not in ("bf16", "fp32"):
            raise ValueError(f"ns_dtype={ns_dtype!r}: choose 'bf16' or 'fp32'")
        super().__init__(params, **kw)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        loss = _closure_loss(closure)
        dtype = torch.bfloat16 if self.ns_dtype == "bf16" else torch.float32
        for group in self.param_groups:
            params, grads, bufs = [], [], []
            self._init_group(group, params, grads, bufs)
            lr, wd, mom = float(group["lr"]), group["weight_decay"], group["momentum"]
            updates = []
            for g, buf in zip(grads, bufs):  # torch's _single_tensor_muon, up to the orthogonalisation
                buf.lerp_(g, 1 - mom)
                updates.append(g.lerp(buf, mom) if group["nesterov"] else buf)
            # same-shape matrices (a layer's q and o, every layer's gate and up …) orthogonalised as one
            # batch: one bmm per iteration instead of one small matmul per matrix (faster in bf16 on AMX: README,
            # "Pretraining's optimizer, profiled"). In fp32 (AVX2) the batch was no faster: one matrix at a time.
            batch = dtype == torch.bfloat16
            for idx in _same_shapes(updates) if batch else [[i] for i in range(len(updates))]:
                stacked = torch.stack([updates[i] for i in idx]) if batch else updates[idx[0]]
                ortho = newton_schulz(stacked, group["ns_coefficients"], group["ns_steps"], group["eps"], dtype)
                for k, i in enumerate(idx):
                    p = params[i]
                    p.mul_(1 - lr * wd)
                    p.add_((ortho[k] if batch else ortho).to(p.dtype),
                           alpha=-_adjust_lr(lr, group["adjust_lr_fn"], p.shape))
        return loss


def _same_shapes(tensors: list[torch.Tensor]) -> list[list[int]]:
    """Indices of ``tensors`` grouped by shape (in first-seen order)."""
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(i)
    return list(groups.values())


class MuonAdamW(torch.optim.Optimizer):
    """``torch.optim.AdamW`` over ``adamw_groups`` and ``torch.optim.Muon`` over ``muon_groups``,
    stepped together. ``param_groups`` lists AdamW's groups first (the Trainer logs the first
    group's learning rate)."""

    def __init__(self, adamw_groups: list[dict], muon_groups: list[dict], *, betas=(0.9, 0.95),
                 momentum: float = 0.95, ns_dtype: str = "bf16"):
        # not Optimizer.__init__: the two inner optimizers own the groups and the state
        # fused: one kernel for every tensor (the same update, several times faster on a CPU: README,
        # "Pretraining's optimizer, profiled")
        self.adamw = torch.optim.AdamW(adamw_groups, betas=betas, weight_decay=0.0, fused=_fused_ok(adamw_groups))
        self.muon = Muon(muon_groups, momentum=momentum, weight_decay=0.0, adjust_lr_fn="original", ns_dtype=ns_dtype)
        self.defaults = {}

    @property
    def param_groups(self) -> list[dict]:  # live: load_state_dict replaces the inner groups
        return self.adamw.param_groups + self.muon.param_groups

    @property
    def state(self):
        return {**self.adamw.state, **self.muon.state}

    @torch.no_grad()
    def step(self, closure=None):
        loss = _closure_loss(closure)
        self.adamw.step()
        self.muon.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.adamw.zero_grad(set_to_none=set_to_none)
        self.muon.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"adamw": self.adamw.state_dict(), "muon": self.muon.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if set(state_dict) != {"adamw", "muon"}:
            raise ValueError("this optimizer state is not a MuonAdamW checkpoint (keys: "
                             f"{sorted(state_dict)[:4]}); resume with the optimizer the run was started with")
        self.adamw.load_state_dict(state_dict["adamw"])
        self.muon.load_state_dict(state_dict["muon"])

    def __repr__(self) -> str:
        return (f"MuonAdamW(adamw={len(self.adamw.param_groups)} groups, muon={len(self.muon.param_groups)} group, "
                f"Newton–Schulz in {self.muon.ns_dtype})")


def _fused_ok(groups: list[dict]) -> bool:
    """torch's fused AdamW runs on CPU and CUDA tensors of floating dtypes, all on one device."""
    params = [p for g in groups for p in g["params"]]
    return bool(params) and len({p.device for p in params}) == 1 and params[0].device.type in ("cpu", "cuda") \
        and all(p.is_floating_point() for p in params)


def build_optimizer(model, cfg, *, ns_dtype: str | None = None) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names, with its parameter groups.

    ``"muon"``: Muon at ``cfg.muon_lr`` for every 2-D weight inside the decoder layers, AdamW at
    ``cfg.embedding_lr`` for the input embeddings and at ``cfg.learning_rate`` for the output head
    and the norms; no weight decay (the quick budget is far from over-fitting). Its Newton–Schulz
    iterations run in ``ns_dtype`` (default: this machine's choice, :func:`puyu_lab.numerics.choose`).
    ``"adamw"``: AdamW at ``cfg.learning_rate`` for everything, ``cfg.weight_decay`` on matrices.
    """
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        decay = [p for _, p in named if p.ndim >= 2]
        rest = [p for _, p in named if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.95), fused=_fused_ok(groups))
    if cfg.optimizer != "muon":
        from ..errors import InputError

        raise InputError(f"unknown optimizer {cfg.optimizer!r}: choose 'muon' or 'adamw'",
                         zh=f"没有 {cfg.optimizer!r} 这个优化器：请选 'muon' 或 'adamw'")
    special = {id(emb), id(head)}
    hidden = [p for _, p in named if p.ndim == 2 and id(p) not in special]
    other = [p for _, p in named if p.ndim != 2 and id(p) not in special]
    head_group = [] if head is emb else [head]  # tied embeddings: one matrix, the embedding group
    adamw_groups = [{"params": head_group + other, "lr": cfg.learning_rate},
                    {"params": [emb], "lr": cfg.embedding_lr}]
    if ns_dtype is None:
        from ..numerics import choose

        ns_dtype = choose("cuda" if emb.is_cuda else "cpu").muon_ns_dtype
    return MuonAdamW(adamw_groups, [{"params": hidden, "lr": cfg.muon_lr}], ns_dtype=ns_dtype)


def zero_init_residual_projections(model) -> None:
    """Start each layer's output projections (attention ``o_proj``, MLP ``down_proj``) at zero, so
    every block begins as the identity and the residual stream carries the embeddings unchanged
    (as nanoGPT-speedrun and nanochat do); training then grows the blocks in from there."""
    for name, p in model.named_parameters():
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            torch.nn.init.zeros_(p)
