"""Connection strings shown to people: every part that can carry a secret replaced by ``***``.

:func:`mask_uri` works on any text given as a URI, whether the driver accepts
it or not, because the ones it rejects are the ones that end up in error
messages. It hides

- the password of the user information, found the way a person would read
  the URI even when it is not escaped (``mongodb://u:Pa55/word@host``: the
  user information ends at the last ``@`` that is followed by a host list and
  comes before the options);
- the whole value of ``authMechanismProperties`` (it carries
  ``AWS_SESSION_TOKEN`` and other credentials);
- the value of every option whose name holds ``password``, ``secret`` or
  ``token`` (``tlsCertificateKeyFilePassword``, ...).

Hosts, database, user name and the other options stay readable.
:func:`redact` is the second safety net: it removes the password of a URI
from any text (an error message that quotes it).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

#: A host list (``h1:27017,[::1]:27018``) followed by the path, the options or the end.
_HOSTS = re.compile(r"[A-Za-z0-9.\-_\[\]:,%]+(?=[/?]|$)")

#: Options whose value is a secret (matched on the option's name, in any case).
_SECRET_OPTION = re.compile(r"password|secret|token|authmechanismproperties", re.IGNORECASE)


def _userinfo_end(rest: str) -> int | None:
    """Where the user information of ``rest`` (the URI after ``://``) ends: its ``@``, if any."""
    end: int | None = None
    for found in re.finditer("@", rest):
        at = found.start()
        if end is not None and "?" in rest[end:at]:
            break  # an "@" inside the options, past the hosts
        if at > 0 and _HOSTS.match(rest, at + 1):
            end = at
    return end


def _parts(uri: str) -> tuple[str, str, str, str]:
    """``uri`` as (scheme and user name with its colon, password, hosts and path, options).

    The password is ``""`` when there is none; the options start with ``?``.
    """
    scheme_end = uri.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    rest = uri[start:]
    at = _userinfo_end(rest)
    before, password = uri[:start], ""
    if at is not None:
        colon = rest.find(":", 0, at)
        if colon >= 0:
            before += rest[: colon + 1]
            password = rest[colon + 1 : at]
        else:
            before += rest[:at]
        rest = rest[at:]
    question = rest.find("?")
    if question < 0:
        return before, password, rest, ""
    return before, password, rest[:question], rest[question:]


def _mask_options(options: str) -> str:
    """``?a=1&tlsCertificateKeyFilePassword=x`` with the secret values masked."""
    pieces = re.split(r"([&;])", options[1:])
    for index in range(0, len(pieces), 2):
        name, equals, _value = pieces[index].partition("=")
        if equals and _SECRET_OPTION.search(unquote(name)):
            pieces[index] = f"{name}={MASK}"
    return "?" + "".join(pieces)


def mask_uri(uri: str) -> str:
    """``uri`` with its password and every secret option replaced by ``***``."""
    before, password, hosts, options = _parts(uri)
    masked = before + (MASK if password else "") + hosts
    return masked + (_mask_options(options) if options else "")


def secrets_of(uri: str) -> list[str]:
    """The secret values in ``uri`` (as written and percent-decoded), longest first."""
    _, password, _, options = _parts(uri)
    values = [password] if password else []
    for piece in re.split(r"[&;]", options[1:]):
        name, equals, value = piece.partition("=")
        if equals and value and _SECRET_OPTION.search(unquote(name)):
            values.append(value)
    found = {form for value in values for form in (value, unquote(value)) if len(form) >= 3}
    return sorted(found, key=len, reverse=True)


def redact(text: str, uri: str | None) -> str:
    """``text`` with the secrets of ``uri`` (if any) replaced by ``***``: a second safety net."""
    if uri:
        for secret in secrets_of(uri):
            text = text.replace(secret, MASK)
    return text


def uri_hint(uri: str) -> str:
    """A hint for a URI the driver refused, when its password needs escaping; else ``""``."""
    _, password, _, _ = _parts(uri)
    if password and re.search(r"[/:@?#\[\]]|%(?![0-9A-Fa-f]{2})", password):
        return (
            "; a password holding / : @ ? # [ ] or % must be percent-escaped "
            "(urllib.parse.quote_plus)"
        )
    return ""
