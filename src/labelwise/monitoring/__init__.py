"""Monitoring: Prometheus metrics, the prediction log, drift, feedback and explanations' helpers."""
