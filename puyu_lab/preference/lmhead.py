"""trl's fused LM head, scoring only the labelled positions on a device without Triton.

trl's preference trainers score tokens through a fused LM head (``trl.trainer.utils.add_fused_lm_head``):
the logits are projected and folded into log-probabilities tile by tile (``trl.kernels.ChunkedLogProbFunction``),
so a GPU never holds a ``(batch, length, vocabulary)`` tensor. On a Triton device trl scores only the
positions that have a label; elsewhere it scores *every* position — prompt and padding included — so
that a compiler that builds one kernel per shape (AWS Neuron) sees fixed shapes. On a CPU nothing is
compiled per shape, and DPO's labels cover only the answers: in the quick profile's DPO run on 2 CPU
cores that head was about half of every step (`make bench`: bench_preference times both heads), scoring
every position where few have a label (long tool prompts, short answers).

:func:`score_labelled_only` replaces a model's fused forward with the same forward that gives trl's kernel
only the labelled positions — trl's own code path on Triton devices (its ``compact`` branch), with the same
kernel, outputs and zeros where the label is ``-100``. It is installed only where trl would not compact
(no Triton) and only for heads trl's kernel takes without rescaling (no logit soft-capping or logit
scale, not a mixture of experts, not a vision-language wrapper); anywhere else trl's head stays as it is.
Written here because trl offers no switch for it; a test checks it against trl's head.
"""
from __future__ import annotations

import functools
import types

import trl

# private names of trl this module builds on (tested with trl 1.16): a trl without them fails here, at import, with
# what to do — not deep inside a preference run
_TRL_RANGE = "trl>=1.16,<1.17"
try:
    from trl.kernels import ChunkedLogProbFunction
    from trl.kernels.chunked_logprob import _use_triton
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE, FusedCausalLMOutput
except ImportError as e:
    raise ImportError(f"puyu_lab.preference.lmhead uses trl's fused LM head and its private _use_triton / "
                      f"_CHUNKED_LOGPROB_CHUNK_SIZE, which this trl ({trl.__version__}) does not have: install "
                      f"{_TRL_RANGE!r} (make setup does), or port score_labelled_only in "
                      f"puyu_lab/preference/lmhead.py to this trl") from e

# the config fields trl reads to rescale the logits before its kernel: a model with any of them keeps trl's head
_RESCALING = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def _plain_head(model) -> bool:
    cfg = model.config
    text = cfg.get_text_config()
    if text is not cfg or getattr(text, "output_router_logits", False):
        return False
    if any(getattr(text, name, None) is not None for name in _RESCALING):
        return False
    head = model.get_output_embeddings()
    return head is not None and getattr(head, "bias", None) is None


def score_labelled_only(model, outputs: tuple[str, ...] = ("log_probs",)) -> bool:
    """Give ``model`` (already patched by trl's ``add_fused_lm_head``) a fused forward that scores only the
    positions whose label is not ``-100``, computing ``outputs`` (trl's names). Returns whether it was
    installed: not on a Triton device (trl already does it there) nor for a head it does not cover."""
    if _use_triton(model.get_output_embeddings().weight.device) or not _plain_head(model):
        return False
    original = type(model).forward

    @functools.wraps(original)
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None,
                **kwargs):
        if not fused_lm_head:
            for name, value in (("labels", labels), ("shift_labels", shift_labels),
                                ("num_items_in_batch", num_items_in_batch)):
                if value is not None:
                    kwargs[name] = value
            return original(self, *args, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        if shift_labels is None:
            hidden, labels = hidden[:, :-1], labels[:, 1:]
        else:
            labels = shift_labels
        head = self.get_output_embeddings()
        hidden, labels = hidden.to(head.weight.device), labels.to(head.weight.device)
        mask = labels != -100
        per_token = ChunkedLogProbFunction.apply(hidden[mask], head.weight, None, labels[mask], 1.0,
                                                 _CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs)
        # zeros where there is no label; masked_scatter keeps an all-masked batch connected to the graph (as trl)
        log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = (
            None if x is None else x.new_zeros(mask.shape).masked_scatter(mask, x) for x in per_token)
        loss = -log_probs.sum() / (mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
        return FusedCausalLMOutput(loss=loss, log_probs=log_probs, entropy=entropy, log_sum_sq_probs=log_sum_sq_probs,
                                   mean_logits=mean_logits, is_top1=is_top1, label_mask=mask)

    forward.scores_labelled_only = True
    model.forward = types.MethodType(forward, model)
    return True


def compact_trainer_heads(trainer) -> bool:
    """:func:`score_labelled_only` on a trl ``DPOTrainer``'s policy and reference model, with the outputs trl
    gave each (its metrics need entropy, mean logits and top-1 from the policy). Returns whether installed."""
    model = trainer.model
    policy = model.get_base_model() if hasattr(model, "get_base_model") else model
    outputs = ("log_probs", "entropy", "mean_logits", "is_top1")
    if getattr(trainer, "use_weighting", False):
        outputs += ("log_sum_sq_probs",)
    done = score_labelled_only(policy, outputs)
    if done and getattr(trainer, "ref_model", None) is not None:
        done = score_labelled_only(trainer.ref_model)
    return done
