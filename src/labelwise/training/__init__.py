"""Training: fit, calibrate, tune thresholds, evaluate and report."""
