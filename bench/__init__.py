"""Harnesses that measure the models: cost counting, timing, sweeps, reports, and the CLI."""
