"""Evaluation stage (OpenCompass): perplexity, multiple-choice and generation tasks across models."""
