"""Credentials and TLS: the store works through them, and passwords never show.

Each test starts its own SecantusDB daemon (``--auth`` or TLS) on 127.0.0.1.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from pymongo import MongoClient

from mongo_runevents import MongoRunEventStore, RunEventStoreError
from mongo_runevents import embedded as embedded_server
from mongo_runevents.cli import main as cli_main
from mongo_runevents.embedded import EmbeddedServer
from tests.factories import event

pytestmark = pytest.mark.skipif(
    not embedded_server.available(), reason="SecantusDB is not installed"
)

PASSWORD = "s3cret:p@ss/word!"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A SecantusDB with --auth and a user ``app`` whose password has URI-special characters."""
    base = tmp_path_factory.mktemp("auth")
    server = EmbeddedServer(base / "data", log_file=base / "log").start()
    with MongoClient(server.uri) as client:
        client.admin.command("createUser", "app", pwd=PASSWORD, roles=["root"])
    server.stop()
    server.extra_args = ("--auth",)
    server.start()
    yield server
    server.stop()


def auth_uri(server: EmbeddedServer, password: str) -> str:
    return (
        f"mongodb://app:{quote_plus(password)}@127.0.0.1:{server.port}/"
        "?authSource=admin&directConnection=true&serverSelectionTimeoutMS=2000"
    )


async def test_store_works_with_credentials(auth_server: EmbeddedServer) -> None:
    """With the right user and password the store reads and writes."""
    async with MongoRunEventStore.from_uri(
        auth_uri(auth_server, PASSWORD), database="secure"
    ) as store:
        assert (await store.put(**event()))["seq"] == 1
        assert await store.count_messages("thread-1") == 1
        assert PASSWORD not in repr(store)
        assert quote_plus(PASSWORD) not in repr(store)


async def test_wrong_password_is_a_typed_error_without_the_password(
    auth_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused login raises a RunEventStoreError whose text and cause chain hold no password."""
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-" + PASSWORD
    async with MongoRunEventStore.from_uri(auth_uri(auth_server, wrong)) as store:
        with pytest.raises(RunEventStoreError) as caught:
            await store.put(**event())
    texts = [str(caught.value), repr(caught.value), str(caught.value.__cause__), caplog.text]
    for secret in (wrong, quote_plus(wrong), PASSWORD):
        assert all(secret not in text for text in texts)


async def test_unauthenticated_client_is_refused(auth_server: EmbeddedServer) -> None:
    """Without credentials the server refuses, and the store says so with a typed error."""
    async with MongoRunEventStore.from_uri(auth_server.uri) as store:
        with pytest.raises(RunEventStoreError):
            await store.put(**event())


def test_cli_never_prints_the_password(
    auth_server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line shows the URI with the password masked, on success and on failure."""
    for password in (PASSWORD, "wrong-" + PASSWORD):
        cli_main(
            [
                "--uri",
                auth_uri(auth_server, password),
                "demo",
                "--runs",
                "1",
                "--steps",
                "1",
                "--cleanup",
            ]
        )
        out, err = capsys.readouterr()
        for secret in (password, quote_plus(password)):
            assert secret not in out + err
        assert "***" in err


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made with openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    base = tmp_path_factory.mktemp("tls")
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]
) -> Iterator[EmbeddedServer]:
    """A SecantusDB that speaks only TLS."""
    cert, key = tls_files
    base = tmp_path_factory.mktemp("tls-server")
    server = EmbeddedServer(
        base / "data",
        extra_args=("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
        log_file=base / "log",
    ).start()
    yield server
    server.stop()


async def test_store_works_over_tls(
    tls_server: EmbeddedServer, tls_files: tuple[Path, Path]
) -> None:
    """With tls=true and the CA file the store reads and writes over TLS."""
    cert, _ = tls_files
    uri = f"{tls_server.uri}&tls=true&tlsCAFile={cert}&serverSelectionTimeoutMS=3000"
    async with MongoRunEventStore.from_uri(uri, database="secure") as store:
        assert (await store.put_batch([event(), event()]))[-1]["seq"] == 2
        assert len(await store.list_messages("thread-1")) == 2


async def test_plaintext_client_cannot_talk_to_a_tls_server(tls_server: EmbeddedServer) -> None:
    """A client without TLS gets a retryable unavailable error, not a hang or a driver exception."""
    uri = f"{tls_server.uri}&serverSelectionTimeoutMS=800"
    async with MongoRunEventStore.from_uri(uri) as store:
        with pytest.raises(RunEventStoreError) as caught:
            await store.put(**event())
    assert caught.value.retryable
