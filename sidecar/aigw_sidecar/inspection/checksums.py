"""Checksums and structural checks that turn a pattern match into a confident finding.

A regular expression alone flags every 16-digit order number as a card and every
``AB12...`` as an IBAN. Where the format carries a check, a detector asks it before it
reports: Luhn for payment cards, ISO 13616 mod-97 (with the country's length) for IBANs,
the CRC-32 that GitHub appends to its tokens, the SSA's never-issued ranges for US SSNs,
and a base64url-encoded JSON header for JWTs. Each is a few lines of arithmetic, written
here rather than pulled from a library so the sidecar's default footprint stays put.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib

__all__ = [
    "IBAN_LENGTHS",
    "github_token_ok",
    "iban_ok",
    "jwt_ok",
    "luhn_ok",
    "ssn_ok",
]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
"""Total IBAN length per country (the ISO 13616 registry)."""


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def luhn_ok(text: str) -> bool:
    """Whether the digits of ``text`` pass the Luhn check (payment card numbers)."""
    digits = _digits(text)
    if not 12 <= len(digits) <= 19:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0 and len(set(digits)) > 1


def iban_ok(text: str) -> bool:
    """ISO 13616: the country's length and the mod-97 check (spaces ignored)."""
    compact = "".join(text.split()).upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def ssn_ok(text: str) -> bool:
    """A US SSN that could have been issued: area not 000, 666 or 9xx; group and serial
    not zero; not one of the numbers known to be published as examples."""
    digits = _digits(text)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in ("078051120", "219099999", "123456789")


def github_token_ok(token: str) -> bool:
    """GitHub's classic token formats (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``):
    30 random base62 characters, then their CRC-32 in 6 base62 digits."""
    body = token[4:]
    if len(body) != 36:
        return False
    payload, check = body[:30], body[30:]
    crc = zlib.crc32(payload.encode())
    encoded = ""
    for _ in range(6):
        crc, digit = divmod(crc, 62)
        encoded = _BASE62[digit] + encoded
    return encoded == check


def jwt_ok(token: str) -> bool:
    """Three base64url segments whose first decodes to a JSON object naming an ``alg``."""
    header = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        decoded = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded
