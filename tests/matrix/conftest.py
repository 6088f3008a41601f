"""Fixtures shared by the Matrix-side tests."""

from tests.matrix.test_handlers import bridge  # noqa: F401 (the handler test bed, for every module)
