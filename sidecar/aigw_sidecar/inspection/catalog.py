"""The built-in detectors and the named profiles (``secrets``, ``pii``, ``strict``).

Why patterns of our own (docs/inspection.md has the long form): the libraries that find PII
in free text either need a language model at run time (Presidio's recognisers sit on spaCy;
LLM Guard on transformers), scan source files line by line and report values without
positions or length bounds (detect-secrets), or cost milliseconds and megabytes per call
(libphonenumber's matcher). A sidecar inspects every prompt and every streamed answer in
its event loop, within 60 MB, so each detector here is one bounded regular expression plus
the format's own check (:mod:`.checksums`), with a literal ``hint`` that skips the regex
when the text cannot contain a match. Every detector has true and false examples in
``tests/inspection/test_detectors.py``.

Every quantifier is bounded, so every match has a known longest length, and each detector
declares how a match can be cut by a stream chunk boundary (:class:`~.detectors.Hold`):
tokens (keys, JWTs, e-mails, connection strings, IP addresses) contain no whitespace;
spaced values (cards, phones, IBANs, SSNs) are short runs of digits, separators and capitals.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from aigw_contract.policy import RedactionProfile

from .checksums import github_token_ok, iban_ok, jwt_ok, luhn_ok, ssn_ok
from .detectors import Detector, Hold, PatternDetector

__all__ = ["BUILTIN", "PROFILES", "profile_detectors"]

_TOKEN = Hold(token=True)


def _spaced(chars: str, max_length: int) -> Hold:
    return Hold(
        charset=re.compile(f"[{chars}]*\\Z"), max_length=max_length, last=re.compile(f"[{chars}]")
    )


_END = r"(?![A-Za-z0-9_-])"
_PEM_HEADER = Hold(
    charset=re.compile(r"-----BEGIN[A-Z0-9 ]{0,50}-{0,5}\Z|-{1,5}(?:B(?:E(?:G(?:I(?:N)?)?)?)?)?\Z"),
    max_length=72,
    last=re.compile(r"[A-Z0-9 \-]"),
)
"""A private key block is held from a header in progress (``-----BEGIN RSA PRIV``); once
the header is complete, the match runs to the end of the text until its END line. Every
header in progress ends in a capital, a digit, a space or a dash (``last``)."""
_PLACEHOLDER_WORDS = frozenset(
    [
        "required",
        "optional",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "string",
        "example",
        "redacted",
        "hidden",
        "secret",
        "password",
        "empty",
        "undefined",
        "unknown",
        "value",
        "xxxx",
    ]
)


def _password_value(match: re.Match[str]) -> bool:
    value = match.group("value")
    if value.lower().strip("*.x") == "" or value.lower() in _PLACEHOLDER_WORDS:
        return False
    if value[0] in "<[{$%" or value.startswith(("[", "(")):
        return False  # <your-password>, ${SECRET}, {{ token }}, [EMAIL_1]
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    if match.group("is"):  # "the password is X": natural language needs a strong shape
        return has_digit and has_alpha
    return has_digit or not value.isalpha() or len(value) >= 12


def _card(match: re.Match[str]) -> bool:
    digits = "".join(c for c in match.group(0) if c.isdigit())
    return digits[0] in "23456" and luhn_ok(digits)


def _ipv6(match: re.Match[str]) -> bool:
    text = match.group(0)
    if text.count(":") < 2 or sum(c.isalnum() for c in text) < 3:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _d(
    name: str,
    category: str,
    confidence: float,
    pattern: str,
    hold: Hold,
    *,
    group: int | str = 0,
    check: object = None,
    hint: str = "",
    digits: int = 0,
    words: tuple[str, ...] = (),
    flags: int = 0,
) -> PatternDetector:
    return PatternDetector(
        name,
        category,
        confidence,
        re.compile(pattern, flags),
        hold,
        group=group,
        check=check,  # type: ignore[arg-type]
        hint=hint,
        digits=digits,
        words=words,
    )


SECRETS: tuple[PatternDetector, ...] = (
    _d("openai_api_key", "API_KEY", 0.95,
       r"\bsk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{16,200}T3BlbkFJ[A-Za-z0-9_-]{16,200}"
       + _END, _TOKEN, hint="T3BlbkFJ"),
    _d("openai_project_key", "API_KEY", 0.85,
       r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250}" + _END, _TOKEN, hint="sk-"),
    _d("anthropic_api_key", "API_KEY", 0.95,
       r"\bsk-ant-(?:api|admin|oat)\d\d-[A-Za-z0-9_-]{32,200}" + _END, _TOKEN, hint="sk-ant-"),
    _d("stripe_key", "API_KEY", 0.9,
       r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,99}\b", _TOKEN, hint="_"),
    _d("aws_access_key_id", "CLOUD_KEY", 0.95,
       r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b", _TOKEN, hint="A"),
    _d("aws_secret_access_key", "CLOUD_KEY", 0.8,
       r"(?i:aws)[A-Za-z_ .-]{0,24}(?i:secret)[A-Za-z_ .-]{0,24}[\"']?\s{0,3}[:=]\s{0,3}[\"']?"
       r"(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])", _TOKEN, group="value", words=("aws",)),
    _d("google_api_key", "CLOUD_KEY", 0.9,
       r"\bAIza[0-9A-Za-z_-]{35}" + _END, _TOKEN, hint="AIza"),
    _d("github_token", "TOKEN", 0.99,
       r"\bgh[pousr]_[A-Za-z0-9]{36}\b", _TOKEN,
       check=lambda m: github_token_ok(m.group(0)), hint="_"),
    _d("github_fine_grained_token", "TOKEN", 0.95,
       r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b", _TOKEN, hint="github_pat_"),
    _d("slack_token", "TOKEN", 0.9,
       r"\bxox[abposr]-[A-Za-z0-9-]{10,200}" + _END, _TOKEN, hint="xox"),
    _d("slack_webhook", "TOKEN", 0.9,
       r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,200}", _TOKEN, hint="hooks.slack"),
    _d("private_key", "PRIVATE_KEY", 0.99,
       r"-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
       r"(?:-----END (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----|\Z)",
       _PEM_HEADER, hint="PRIVATE KEY"),
    _d("jwt", "JWT", 0.95,
       r"\beyJ[A-Za-z0-9_-]{8,8000}\.eyJ[A-Za-z0-9_-]{2,8000}\.[A-Za-z0-9_-]{0,8000}" + _END,
       _TOKEN, check=lambda m: jwt_ok(m.group(0)), hint="eyJ"),
    _d("connection_string", "CONNECTION_STRING", 0.9,
       r"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver"
       r"|jdbc:[a-z]{2,12})://[^\s:@/]{1,128}:[^\s@/]{1,256}@[^\s]{1,512}", _TOKEN, hint="://"),
    _d("password_assignment", "PASSWORD", 0.75,
       r"(?i:\b(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?token"
       r"|auth[_-]?token|client[_-]?secret))[\"']?"
       r"(?:\s{0,3}[:=]|\s{1,3}(?P<is>is)(?:\s{0,2}:)?)\s{0,3}[\"']?"
       r"(?P<value>[^\s\"',;]{4,200})", _TOKEN, group="value", check=_password_value,
       words=("pass", "pwd", "secret", "api", "token")),
)  # fmt: skip

PII: tuple[PatternDetector, ...] = (
    _d("email", "EMAIL", 0.95,
       r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}"
       r"[A-Za-z]{2,24}\b", _TOKEN, hint="@"),
    _d("credit_card", "CARD", 0.9,
       r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])", _spaced(r"0-9 \-", 23), check=_card, digits=12),
    _d("iban", "IBAN", 0.95,
       r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", _spaced(r"A-Z0-9 ", 42),
       check=lambda m: iban_ok(m.group(0)), digits=2),
    _d("us_ssn", "SSN", 0.85,
       r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-])", _spaced(r"0-9 \-", 11),
       check=lambda m: ssn_ok(m.group(0)), digits=9),
    _d("phone_international", "PHONE", 0.8,
       r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){2,5}(?![\w-])",
       _spaced(r"0-9 +().\-", 24), check=lambda m: 8 <= sum(c.isdigit() for c in m[0]) <= 15,
       hint="+", digits=8),
    _d("phone_nanp", "PHONE", 0.7,
       r"(?<![\w(+-])(?:\([2-9]\d\d\)\s?|[2-9]\d\d[ .-])[2-9]\d\d[ .-]\d{4}(?![\w-])",
       _spaced(r"0-9 ().\-", 16), digits=10),
    _d("ipv4", "IP_ADDRESS", 0.8,
       r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
       r"(?!\.?\w)", _TOKEN, hint=".", digits=4),
    _d("ipv6", "IP_ADDRESS", 0.7,
       r"(?<![\w:.])[0-9A-Fa-f:]{2,39}(?![\w:])", _TOKEN, check=_ipv6, hint=":"),
)  # fmt: skip

STRICT_ONLY: tuple[PatternDetector, ...] = (
    _d("bearer_token", "TOKEN", 0.7,
       r"(?i:\bbearer)\s{1,3}(?P<value>[A-Za-z0-9._~+/-]{20,500}=*)", _TOKEN, group="value",
       words=("bearer",)),
    _d("hex_secret", "TOKEN", 0.5,
       r"(?<![A-Za-z0-9])[0-9a-f]{32,128}(?![A-Za-z0-9])", _TOKEN),
)  # fmt: skip

BUILTIN: Mapping[str, PatternDetector] = {d.name: d for d in (*SECRETS, *PII, *STRICT_ONLY)}
"""Every built-in detector by name."""

PROFILES: Mapping[RedactionProfile, tuple[Detector, ...]] = {
    RedactionProfile.OFF: (),
    RedactionProfile.SECRETS: SECRETS,
    RedactionProfile.PII: PII,
    RedactionProfile.STRICT: (*SECRETS, *PII, *STRICT_ONLY),
}
"""The named sets: ``secrets`` (keys, tokens, private keys, JWTs, connection strings,
passwords), ``pii`` (e-mails, phones, cards, IBANs, SSNs, IP addresses), ``strict`` (both,
plus bearer tokens and long hex secrets)."""


def profile_detectors(profile: RedactionProfile) -> tuple[Detector, ...]:
    """The detectors of a named profile."""
    return PROFILES[profile]
