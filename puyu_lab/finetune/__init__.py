"""Fine-tune stage (XTuner): SFT data (self-cognition, dialogs, sentiment, tool use, custom files),
full / LoRA / QLoRA training with the InternLM2 chat template, merging, and the XTuner config.

Engines only (no widgets): ``data`` (the SFT mixture and custom-file checks), ``train`` (config,
the Trainer run, merge, scoring), ``cli`` (``puyu-lab finetune …``). The chat format itself is the
model layer's (:mod:`puyu_lab.models.template`).
"""
