"""Connection strings shown to people hide every secret, whether the driver accepts them or not."""

from __future__ import annotations

import pytest

from mongo_runevents import ConfigurationError, MongoRunEventStore
from mongo_runevents.uri import mask_uri, redact


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://u:Pa55/word@h:27017/", "mongodb://u:***@h:27017/"),
        ("mongodb://u:p@ss@h1,h2/db?tls=true", "mongodb://u:***@h1,h2/db?tls=true"),
        ("mongodb://u:Pa?55@h/?w=1", "mongodb://u:***@h/?w=1"),
        ("mongodb://u:p@h/word@h2/", "mongodb://u:***@h2/"),
        ("mongodb://u:pw@h/?appname=me@host", "mongodb://u:***@h/?appname=me@host"),
        (
            "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok",
            "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=***",
        ),
        (
            "mongodb://u:pw@[::1]:27017/?mySecret=abc;apiToken=xyz&w=1",
            "mongodb://u:***@[::1]:27017/?mySecret=***;apiToken=***&w=1",
        ),
        (
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=secret",
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***",
        ),
        (
            "mongodb+srv://admin:s%40cret@cluster.example.net",
            "mongodb+srv://admin:***@cluster.example.net",
        ),
        ("mongodb://user@h/", "mongodb://user@h/"),
        ("mongodb://h:27017/db", "mongodb://h:27017/db"),
    ],
)
def test_mask_uri_hides_every_secret_and_keeps_the_rest(uri: str, expected: str) -> None:
    """Passwords (escaped or not), authMechanismProperties and password/secret/token options become ***."""
    assert mask_uri(uri) == expected


def test_redact_removes_a_uris_secrets_from_any_text() -> None:
    """redact() replaces the password, as written and percent-decoded, and secret option values."""
    uri = "mongodb://u:s%2Fcret@h/?authMechanismProperties=AWS_SESSION_TOKEN:tok123"
    text = "failed for s%2Fcret, s/cret and AWS_SESSION_TOKEN:tok123"
    assert redact(text, uri) == "failed for ***, *** and ***"


@pytest.mark.parametrize(
    ("uri", "secret"),
    [
        ("mongodb://u:Pa55/word@127.0.0.1:27017/", "Pa55/word"),
        ("mongodb://u:Pa55word@127.0.0.1:99999/", "Pa55word"),
        ("mongodb://u:Pa55:word@127.0.0.1/", "Pa55:word"),
        ("mongo://u:Pa55word@127.0.0.1/", "Pa55word"),
        ("mongodb://u:Pa55word@127.0.0.1/?tls=true&tlsCAFile=/no/such/file", "Pa55word"),
    ],
)
def test_bad_uris_raise_our_configuration_error_with_the_uri_masked(uri: str, secret: str) -> None:
    """Whatever pymongo raises for a bad URI (InvalidURI, ValueError, OSError) becomes ConfigurationError."""
    with pytest.raises(ConfigurationError) as raised:
        MongoRunEventStore.connect(uri)
    message = str(raised.value)
    assert message.startswith("cannot use the MongoDB URI mongo")
    assert secret not in message
    assert "u:***@" in message


@pytest.mark.parametrize(
    "uri", ["mongodb://u:Pa55/word@127.0.0.1/", "mongodb://u:Pa55/word@127.0.0.1:27017/"]
)
def test_a_password_that_needs_escaping_gets_one_hint(uri: str) -> None:
    """A refused URI whose password holds an unescaped / says once how to escape it."""
    with pytest.raises(ConfigurationError) as raised:
        MongoRunEventStore.connect(uri)
    assert str(raised.value).count("quote_plus") == 1
