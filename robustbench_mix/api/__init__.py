"""The Python entry points for a model the suite did not train: ``evaluate`` and what it accepts."""
