r"""The one ISO-8601 grammar of ``created_at``, for checking it, reading it and the fast path.

Written by hand rather than with ``datetime.fromisoformat``, whose accepted
forms differ between Python 3.10 and 3.11 (``Z``, fractions of other than 3
or 6 digits): every store must accept the same strings. ASCII digits only:
``\d`` would take any Unicode digit ("١٢"), and ``int()`` reads them.

Its users: :func:`check_iso_8601` validates every event's ``created_at``
(:mod:`mongo_runevents.models`); :func:`utc_moment` reads one for an import's
order, a thread's last activity and DeerFlow's SQL times; :data:`ISO_8601_FAST`
is the same grammar with each field's range spelt out, for the validation in
Rust (:mod:`mongo_runevents._fastpath`).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone


def _grammar(
    day: str, hour: str, minute: str, second: str, offset_hour: str, offset_minute: str
) -> str:
    """The grammar, each field given as a pattern.

    A date, then optionally ``T`` or a space, a time (seconds, and a fraction
    of up to 9 digits, optional) and an offset.
    """
    return (
        f"(?P<date>{day})"
        f"(?:[T ](?P<time>{hour}:{minute}(?::{second}(?:[.,][0-9]{{1,9}})?)?)"
        f"(?P<offset>Z|z|[+-]{offset_hour}(?::?{offset_minute})?)?)?"
    )


_TWO_DIGITS = "[0-9]{2}"
#: The grammar with any two digits per field; :func:`check_iso_8601` checks the ranges.
ISO_8601 = re.compile(_grammar(f"[0-9]{{4}}-{_TWO_DIGITS}-{_TWO_DIGITS}", *[_TWO_DIGITS] * 5))

#: Years 2 to 9998: a time on the first or last day of the range may fall
#: outside it in UTC, which the full check does.
_FAST_YEAR = (
    "(?:[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8]|0[1-9][0-9]{2}|00[1-9][0-9]|000[2-9])"
)
_FAST_MONTH_DAY = (
    "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    "|(?:0[13-9]|1[0-2])-(?:29|30)"
    "|(?:0[13578]|1[02])-31)"
)
_FAST_LEAP_YEAR = (
    "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
)
_FAST_HOUR = "(?:[01][0-9]|2[0-3])"
_FAST_MINUTE = "[0-5][0-9]"
#: The strings :func:`check_iso_8601` accepts (but for the years 1 and 9999),
#: every range and leap year in the pattern: pydantic-core checks them in Rust.
ISO_8601_FAST = (
    "^"
    + _grammar(
        f"(?:{_FAST_YEAR}-{_FAST_MONTH_DAY}|{_FAST_LEAP_YEAR}-02-29)",
        _FAST_HOUR,
        _FAST_MINUTE,
        f"(?:{_FAST_MINUTE}|60)",
        _FAST_HOUR,
        _FAST_MINUTE,
    )
    + "$"
)


def _in_utc(match: re.Match[str]) -> datetime:
    """The moment a matched time names, in UTC (no offset: UTC); ``ValueError`` if it names none.

    A time outside the years 1 to 9999 once converted to UTC
    (``0001-01-01T00:00+01:00``, a leap second at the end of 9999) is
    refused: nothing that orders or reads back times could turn it into a date.
    """
    day = date.fromisoformat(match["date"])
    shift = timedelta()
    if match["time"]:
        hour, minute, *rest = match["time"].replace(",", ".").split(":")
        second, _, fraction = (rest[0] if rest else "0").partition(".")
        if not (int(hour) <= 23 and int(minute) <= 59 and int(second) <= 60):
            raise ValueError("time out of range")
        shift = timedelta(
            hours=int(hour),
            minutes=int(minute),
            seconds=int(second),
            microseconds=int(fraction[:6].ljust(6, "0")),
        )
    offset = match["offset"]
    if offset and offset not in "Zz":
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            raise ValueError("offset out of range")
        zone = timedelta(hours=hours, minutes=minutes)
        shift -= zone if offset[0] == "+" else -zone
    try:
        return datetime.combine(day, time(), timezone.utc) + shift
    except OverflowError:
        raise ValueError("it falls outside the years 1 to 9999 in UTC") from None


def check_iso_8601(text: str) -> str:
    """Return ``text`` unchanged if it is an ISO-8601 date or date-time, else raise ``ValueError``."""
    match = ISO_8601.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not an ISO-8601 date-time")
    try:
        _in_utc(match)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid ISO-8601 date-time ({exc})") from None
    return text


def utc_moment(text: str) -> datetime | None:
    """The moment ``text`` names, in UTC, if :func:`check_iso_8601` accepts it; else ``None``."""
    match = ISO_8601.fullmatch(text)
    if match is None:
        return None
    try:
        return _in_utc(match)
    except ValueError:
        return None
