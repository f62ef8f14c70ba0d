"""Shared contracts: what a producing stage and a consuming stage must agree on, importable by both
without going through either (stages never import each other).

    calculator.py  the calculator: its safe evaluator and the schema the model is shown
                   (fine-tune trains on calls to it, the agent runs it)
    dates.py       add_days (the agent lab's second task): the function and the schema the model is shown
    protocol.py    the tool protocol's text (calls, results, the tool list) the tokenizer also trains on
    tasks.py       the sentiment instruction, the arithmetic question form, the tool system prompt
                   (fine-tune trains on them; eval and agent ask them)
    dialogs.py     the chatterbot-corpus dialogs and the over-fitting probes kept out of them
                   (fine-tune trains on dialogs; eval asks unseen ones)
    training.py    what fine-tune and preference share: a tuning run's result (TrainResult) and the error a
                   custom data file without one valid line raises
"""
