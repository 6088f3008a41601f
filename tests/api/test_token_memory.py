"""HS256 tokens verified once are remembered until they expire, and only then."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from bridge.api.auth import TokenVerifier
from bridge.errors import Unauthorized
from tests.api.conftest import SECRET, api_config, hs_token


async def test_a_remembered_token_still_expires() -> None:
    verifier = TokenVerifier(api_config(algorithm="HS256", secret=SECRET, leeway=0).api.jwt)
    sub = uuid.uuid4()
    token = hs_token(sub, exp=int(time.time()) + 1)
    assert verifier.verify(token)["sub"] == str(sub)
    claims = verifier.verify(token)  # remembered
    claims["sub"] = "changed by a caller"
    assert verifier.verify(token)["sub"] == str(sub)  # callers get copies
    deadline = time.monotonic() + 10
    while True:
        try:
            verifier.verify(token)
        except Unauthorized as exc:
            assert "expired" in str(exc)
            break
        assert time.monotonic() < deadline, "a remembered token outlived its exp"
        await asyncio.sleep(0.05)


def test_only_the_exact_token_is_remembered() -> None:
    verifier = TokenVerifier(api_config().api.jwt)
    token = hs_token(uuid.uuid4())
    verifier.verify(token)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(Unauthorized):
        verifier.verify(forged)
    with pytest.raises(Unauthorized):
        verifier.verify(hs_token(uuid.uuid4(), secret="another-secret-of-at-least-32-bytes!!"))
