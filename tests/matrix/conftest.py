"""Fixtures shared by the Matrix-side tests."""

from typing import Any

import pytest

from tests.conftest import AS_TOKEN
from tests.fake_homeserver import FakeHomeserver
from tests.matrix.test_handlers import bridge  # noqa: F401 (the handler test bed, for every module)


@pytest.fixture
async def hs(aiohttp_server: Any) -> FakeHomeserver:
    """A recording fake homeserver, served on loopback."""
    fake = FakeHomeserver(as_token=AS_TOKEN)
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake
