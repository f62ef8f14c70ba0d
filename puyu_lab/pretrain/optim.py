"""The pretraining optimizer: Muon for the hidden weight matrices, AdamW for the rest.

Muon (``torch.optim.Muon``) orthogonalises each matrix's momentum (Newton–Schulz), so every
direction of a weight matrix learns at the same rate. On the quick budget (~1 M tokens, 2 CPU
cores) it takes the tiny model well past the unigram plateau where AdamW still sits: in
``make bench`` the quick run's held-out loss ends at 5.16 with Muon and 6.26 with AdamW alone
(from 8.35; same model, data, schedule and seed), although a Muon step costs ~25 % more time. Embeddings, the output head and the norm weights are not hidden matrices and stay with
AdamW (the embeddings at a higher rate: each row learns only when its token occurs).

``MuonAdamW`` is one ``torch.optim.Optimizer`` to the HF Trainer, its LR scheduler (which scales
every group by the same cosine factor) and its checkpoints (``optimizer.pt`` holds both states),
so Stop/Resume and ``accelerate launch`` work unchanged.
"""
from __future__ import annotations

import torch


class MuonAdamW(torch.optim.Optimizer):
    """``torch.optim.AdamW`` over ``adamw_groups`` and ``torch.optim.Muon`` over ``muon_groups``,
    stepped together. ``param_groups`` lists AdamW's groups first (the Trainer logs the first
    group's learning rate)."""

    def __init__(self, adamw_groups: list[dict], muon_groups: list[dict], *, betas=(0.9, 0.95),
                 momentum: float = 0.95):
        # not Optimizer.__init__: the two inner optimizers own the groups and the state
        self.adamw = torch.optim.AdamW(adamw_groups, betas=betas, weight_decay=0.0)
        self.muon = torch.optim.Muon(muon_groups, momentum=momentum, weight_decay=0.0, adjust_lr_fn="original")
        self.defaults = {}

    @property
    def param_groups(self) -> list[dict]:  # live: load_state_dict replaces the inner groups
        return self.adamw.param_groups + self.muon.param_groups

    @property
    def state(self):
        return {**self.adamw.state, **self.muon.state}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
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
        return f"MuonAdamW(adamw={len(self.adamw.param_groups)} groups, muon={len(self.muon.param_groups)} group)"


def build_optimizer(model, cfg) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names, with its parameter groups.

    ``"muon"``: Muon at ``cfg.muon_lr`` for every 2-D weight inside the decoder layers, AdamW at
    ``cfg.embedding_lr`` for the input embeddings and at ``cfg.learning_rate`` for the output head
    and the norms; no weight decay (the quick budget is far from over-fitting).
    ``"adamw"``: AdamW at ``cfg.learning_rate`` for everything, ``cfg.weight_decay`` on matrices.
    """
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        decay = [p for _, p in named if p.ndim >= 2]
        rest = [p for _, p in named if p.ndim < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                  {"params": rest, "weight_decay": 0.0}],
                                 lr=cfg.learning_rate, betas=(0.9, 0.95))
    if cfg.optimizer != "muon":
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}: choose 'muon' or 'adamw'")
    special = {id(emb), id(head)}
    hidden = [p for _, p in named if p.ndim == 2 and id(p) not in special]
    other = [p for _, p in named if p.ndim != 2 and id(p) not in special]
    head_group = [] if head is emb else [head]  # tied embeddings: one matrix, the embedding group
    adamw_groups = [{"params": head_group + other, "lr": cfg.learning_rate},
                    {"params": [emb], "lr": cfg.embedding_lr}]
    return MuonAdamW(adamw_groups, [{"params": hidden, "lr": cfg.muon_lr}])


def zero_init_residual_projections(model) -> None:
    """Start each layer's output projections (attention ``o_proj``, MLP ``down_proj``) at zero, so
    every block begins as the identity and the residual stream carries the embeddings unchanged
    (as nanoGPT-speedrun and nanochat do); training then grows the blocks in from there."""
    for name, p in model.named_parameters():
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            torch.nn.init.zeros_(p)
