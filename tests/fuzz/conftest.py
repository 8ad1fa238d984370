"""Hypothesis settings for the quick fuzz tests in `make test`: a fixed number of
examples, derandomised (the same inputs every run, so a failure reproduces), no example
database written into the checkout. bench/fuzz.py runs the same targets at random, longer.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings

# The deadline only catches a hang or a pathological input (a loader taking seconds on a
# file of a few KB); it is not a speed test.
settings.register_profile(
    "quick",
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("quick")
