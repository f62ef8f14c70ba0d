"""InternLM-Train stage: a sentencepiece tokenizer and a tiny InternLM2-style model, trained from scratch."""
