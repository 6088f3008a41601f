"""Settings of the property-based fuzz tests: seeded and bounded for CI, longer on demand.

CI runs a fixed number of examples from a fixed seed (``derandomize``), so a failure
reproduces. For a nightly run, raise the count and vary the seed::

    BRIDGE_FUZZ_EXAMPLES=2000 BRIDGE_FUZZ_SEED=$RANDOM .venv/bin/python -m pytest tests/fuzz

A failing example is printed with the seed that found it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings

F = TypeVar("F", bound=Callable[..., Any])

#: Examples per fuzz test in CI (each is a few HTTP requests against the real app and Postgres).
CI_EXAMPLES = 60


def fuzz_settings(ci_examples: int = CI_EXAMPLES) -> Callable[[F], F]:
    """Hypothesis settings for one fuzz test: the app and database are set up once and shared
    by its examples (each example uses fresh ids), so the function-scoped fixtures are meant."""
    examples = int(os.environ.get("BRIDGE_FUZZ_EXAMPLES", ci_examples))
    chosen_seed = os.environ.get("BRIDGE_FUZZ_SEED")
    configured = settings(
        max_examples=examples,
        derandomize=chosen_seed is None,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )

    def apply(test: F) -> F:
        decorated = configured(test)
        return seed(int(chosen_seed))(decorated) if chosen_seed is not None else decorated

    return apply
