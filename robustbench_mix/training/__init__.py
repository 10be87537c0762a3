"""``fit``: the training loop (speed paths decided once, at the edge) and its checkpoints."""
