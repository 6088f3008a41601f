"""Fixtures shared by the Matrix-side tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import AS_TOKEN
from tests.fake_homeserver import FakeHomeserver, serve_fake_homeserver
from tests.matrix.test_handlers import bridge  # noqa: F401 (the handler test bed, for every module)


@pytest.fixture
async def hs(aiohttp_server: Any) -> AsyncIterator[FakeHomeserver]:
    """A recording fake homeserver on a real port; the test fails on any protocol violation."""
    fake = await serve_fake_homeserver(aiohttp_server, AS_TOKEN)
    yield fake
    assert fake.violations == []
