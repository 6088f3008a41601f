"""Fixtures shared by the Matrix-side tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import AS_TOKEN
from tests.fake_homeserver import FakeHomeserver
from tests.matrix.test_handlers import bridge  # noqa: F401 (the handler test bed, for every module)


@pytest.fixture
async def hs(aiohttp_server: Any) -> AsyncIterator[FakeHomeserver]:
    """A recording fake homeserver on a real port; the test fails on any protocol violation."""
    fake = FakeHomeserver(as_token=AS_TOKEN)
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url(""))
    yield fake
    assert fake.violations == []
