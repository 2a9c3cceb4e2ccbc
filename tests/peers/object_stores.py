"""Real S3 (moto's server) and Azure Blob (Azurite) endpoints on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from .process import LOOPBACK, ServerProcess, ToolMissing, find_program, serve

TESTS_DIR = Path(__file__).resolve().parent.parent
# tests/run.sh installs Azurite here with npm (gitignored).
NODE_PREFIX = TESTS_DIR / ".node"


@dataclass(frozen=True)
class S3Endpoint:
    """A moto S3 server. Any credentials are accepted; these are what tests pass."""

    url: str
    server: ServerProcess
    region: str = "us-east-1"
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for boto3/aiobotocore `client("s3", **kwargs)`."""
        return {
            "endpoint_url": self.url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }


def _moto_server_program() -> str:
    venv_bin = Path(sys.executable).parent
    return find_program(
        "moto_server", venv_bin / "moto_server", hint="pip package moto[server], the test extra"
    )


@contextlib.asynccontextmanager
async def moto_s3(*, parent_dir: Path | None = None) -> AsyncIterator[S3Endpoint]:
    program = _moto_server_program()

    def launch(ports: list[int], workdir: Path) -> list[str]:
        return [program, "-H", LOOPBACK, "-p", str(ports[0])]

    # aiohttp under dev mode rejects moto's duplicate Server header: never dev mode.
    env = {"PYTHONDEVMODE": "", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    async with serve("moto-s3", launch, env=env, parent_dir=parent_dir) as server:
        yield S3Endpoint(f"http://{LOOPBACK}:{server.port}", server)


@dataclass(frozen=True)
class AzuriteEndpoint:
    """An Azurite blob service with a one-off account made for this run."""

    account_name: str
    account_key: str
    blob_url: str
    server: ServerProcess

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_url};"
        )


def azurite_blob_program() -> str:
    find_program("node", hint="Debian package nodejs; azurite-blob is a node script")
    local = NODE_PREFIX / "node_modules" / ".bin" / "azurite-blob"
    try:
        return find_program("azurite-blob", local, hint="npm package azurite")
    except ToolMissing:
        raise ToolMissing("azurite-blob", f"npm package azurite, installed under {NODE_PREFIX}") from None


@contextlib.asynccontextmanager
async def azurite_blob(*, parent_dir: Path | None = None) -> AsyncIterator[AzuriteEndpoint]:
    program = azurite_blob_program()
    # A fresh account (AZURITE_ACCOUNTS) rather than the emulator's documented one.
    account = "triopacs"
    key = base64.b64encode(secrets.token_bytes(32)).decode()

    def launch(ports: list[int], workdir: Path) -> list[str]:
        return [
            program,
            "--blobHost", LOOPBACK,
            "--blobPort", str(ports[0]),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableProductStyleUrl",
        ]

    env = {"AZURITE_ACCOUNTS": f"{account}:{key}"}
    async with serve("azurite-blob", launch, env=env, parent_dir=parent_dir) as server:
        yield AzuriteEndpoint(account, key, f"http://{LOOPBACK}:{server.port}/{account}", server)
