"""Salesforce-shaped record ids: a 3-character key prefix, 15 case-sensitive characters, a 3-character
case-safe suffix (the 18-character form every API answer uses)."""

from __future__ import annotations

import re

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Z0-5]{3})?$")
INSTANCE = "8e"  # the two "pod" characters of every emulator id


def suffix(id15: str) -> str:
    """Salesforce's case-safe checksum: one character per five, a bit per upper-case letter."""
    out = []
    for chunk in range(3):
        flags = 0
        for position in range(5):
            char = id15[chunk * 5 + position]
            if "A" <= char <= "Z":
                flags |= 1 << position
        out.append(_SUFFIX_ALPHABET[flags])
    return "".join(out)


def make_id(prefix: str, number: int) -> str:
    """The 18-character id of the `number`-th record with this key prefix."""
    digits = []
    while True:
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
        if number == 0:
            break
    body = "".join(reversed(digits)).rjust(9, "0")
    if len(body) > 9:
        raise ValueError("id space exhausted")
    id15 = f"{prefix}{INSTANCE}0{body}"
    return id15 + suffix(id15)


def is_valid_id(value: str) -> bool:
    """15 or 18 alphanumerics, and an 18-character id's suffix matches its first 15 characters."""
    if not _ID_RE.match(value):
        return False
    return len(value) == 15 or suffix(value[:15]) == value[15:]


def normalize_id(value: str) -> str | None:
    """The 18-character form of a valid 15- or 18-character id, else None."""
    if not is_valid_id(value):
        return None
    return value if len(value) == 18 else value + suffix(value)
