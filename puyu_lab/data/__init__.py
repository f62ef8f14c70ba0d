"""书生·万卷 Data stage: load raw text, compute signals, filter, scrub PII, deduplicate, export."""
