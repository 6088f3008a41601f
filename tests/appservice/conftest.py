"""Fixtures of the operator test bed (the whole app, a fake homeserver, a failing handler)."""

from tests.ops.bed import bed, hs, overrides  # noqa: F401
