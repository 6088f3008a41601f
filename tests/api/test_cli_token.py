"""``bridge mint-token``: the command and the tokens it prints."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from bridge.api.keys import thumbprint
from bridge.cli_token import add_parser
from bridge.config import ConfigError
from tests.api.conftest import SECRET, Api, RsaKey, write
from tests.conftest import config_data


def run(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str], **jwt_config: Any
) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_data(api={"jwt": jwt_config})))
    parser = argparse.ArgumentParser(prog="bridge")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS)
    add_parser(parser.add_subparsers(dest="command"), common)
    args = parser.parse_args(["mint-token", "-c", str(path), *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out.strip()


def test_mint_hs256(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sub = uuid.uuid4()
    token = run(
        tmp_path,
        ["--sub", str(sub), "--name", "Ann", "--admin", "--ttl", "60"],
        capsys,
        algorithm="HS256",
        secret=SECRET,
        audience="api",
        issuer="bridge",
    )
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="api", issuer="bridge")
    assert claims["sub"] == str(sub) and claims["name"] == "Ann" and claims["roles"] == ["admin"]
    assert claims["exp"] - claims["iat"] == 60
    other = run(
        tmp_path,
        ["--sub", str(sub), "--aud", "elsewhere"],
        capsys,
        algorithm="HS256",
        secret=SECRET,
        audience="api",
    )
    assert jwt.decode(other, SECRET, algorithms=["HS256"], audience="elsewhere")["sub"] == str(sub)


def test_mint_rs256_with_thumbprint_kid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rsa_keys: tuple[RsaKey, RsaKey]
) -> None:
    key, _ = rsa_keys
    path = write(tmp_path / "key.pem", key.private_pem)
    token = run(
        tmp_path,
        ["--sub", str(uuid.uuid4())],
        capsys,
        algorithm="RS256",
        private_key_file=str(path),
    )
    assert jwt.get_unverified_header(token)["kid"] == thumbprint(key.private.public_key())
    jwt.decode(token, key.public_pem, algorithms=["RS256"])


def test_mint_refuses_without_key_material(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as exc:
        run(tmp_path, ["--sub", str(uuid.uuid4())], capsys, algorithm="HS256")
    assert exc.value.key == "api.jwt.secret"


async def test_minted_token_is_accepted_by_the_api(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = uuid.uuid4()
    token = run(
        tmp_path, ["--sub", str(sub), "--name", "Minted"], capsys, algorithm="HS256", secret=SECRET
    )
    resp = await api.client.get(
        "/messaging-api/v1/conversations", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 200 and (await resp.json())["userId"] == str(sub)
