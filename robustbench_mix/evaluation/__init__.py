"""Rows of a trained model: clean metrics, calibration, memorization, attacks, corruptions, the sanity checks,
and the metrics registry."""
