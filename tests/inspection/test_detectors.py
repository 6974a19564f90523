# ruff: noqa: E501 - one example table row per line
"""Every built-in detector against true and false examples, the checksums, the profiles,
the custom-pattern rules, and the stream hold-back at every chunk boundary."""

from __future__ import annotations

import dataclasses
import random

import pytest

from aigw_contract.patterns import check_pattern, max_width
from aigw_contract.policy import RedactionMode, RedactionProfile
from aigw_sidecar.inspection import (
    BUILTIN,
    PROFILES,
    DetectorTable,
    Finding,
    RedactionPlan,
    Replacer,
    TextChannel,
    redact,
    scan,
    select,
)
from aigw_sidecar.inspection.checksums import github_token_ok, iban_ok, luhn_ok, ssn_ok
from aigw_sidecar.inspection.stream import MAX_HOLD, HoldOverflow

GITHUB = "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"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7yn3bRHQ5FHMQ\nU4mZpX9T2k\n"
    "-----END RSA PRIVATE KEY-----"
)

# detector -> (texts it must find the value in, texts it must find nothing in)
EXAMPLES: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "openai_api_key": (
        [("key sk-abcdefghijklmnopT3BlbkFJqrstuvwxyzABCDEF end",
          "sk-abcdefghijklmnopT3BlbkFJqrstuvwxyzABCDEF")],
        ["sk-short", "use the sk- prefix", "T3BlbkFJ alone"],
    ),
    "openai_project_key": (
        [("sk-proj-" + "a1B2" * 12, "sk-proj-" + "a1B2" * 12)],
        ["sk-proj-short", "a sk-project plan"],
    ),
    "anthropic_api_key": (
        [("x sk-ant-api03-" + "Zq7" * 30 + "AA y", "sk-ant-api03-" + "Zq7" * 30 + "AA")],
        ["sk-ant-api03-short", "the sk-ant- prefix"],
    ),
    "stripe_key": (
        [("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc")],
        ["sk_live_", "risk_test_plan"],
    ),
    "aws_access_key_id": (
        [("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE")],
        ["AKIA1234", "XAKIAIOSFODNN7EXAMPLEX", "akiaiosfodnn7example"],
    ),
    "aws_secret_access_key": (
        [("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
          "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")],
        ["aws secret rotation is due", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY alone"],
    ),
    "google_api_key": (
        [("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe")],
        ["AIza short", "AIzaSy"],
    ),
    "github_token": (
        [(f"token {GITHUB}.", GITHUB)],
        ["ghp_" + "a" * 36, "ghp_aigwcanaryaigwcanaryaigwcanary18Gst9", "ghp_short"],
    ),
    "github_fine_grained_token": (
        [("github_pat_" + "A" * 22 + "_" + "b" * 59, "github_pat_" + "A" * 22 + "_" + "b" * 59)],
        ["github_pat_short"],
    ),
    "slack_token": (
        [("xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012-abcdefABCDEF")],
        ["xoxb-1", "xox box"],
    ),
    "slack_webhook": (
        [("https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX",
          "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX")],
        ["https://hooks.slack.com/ docs"],
    ),
    "private_key": (
        [(f"here:\n{PEM}\nbye", PEM), ("-----BEGIN PRIVATE KEY-----\nMIIB", "-----BEGIN PRIVATE KEY-----\nMIIB")],
        ["-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "a private key is secret"],
    ),
    "jwt": (
        [(f"Bearer-less {JWT} ok", JWT)],
        ["eyJhbGciOi.notajwt", "eyJ" + "x" * 20 + ".eyJ" + "y" * 20 + ".zz"],
    ),
    "connection_string": (
        [("DATABASE_URL=postgres://app:s3cret@db:5432/prod", "postgres://app:s3cret@db:5432/prod"),
         ("mongodb+srv://u:p4ss@cluster0.example.net/x", "mongodb+srv://u:p4ss@cluster0.example.net/x")],
        ["postgres://db:5432/prod", "see https://user@example.com/docs"],
    ),
    "password_assignment": (
        [("password: hunter2x", "hunter2x"), ("The password is Tr0ub4dor&3", "Tr0ub4dor&3"),
         ('"client_secret": "d8f7a6b5c4e3"', "d8f7a6b5c4e3")],
        ["password: required", "password is incorrect", "password=<your-password>",
         "password: ${DB_PASSWORD}", "reset your password today", "password: [PASSWORD_1]"],
    ),
    "email": (
        [("mail jane.doe+tag@example.co.uk now", "jane.doe+tag@example.co.uk")],
        ["jane at example dot com", "@handle on social", "user@localhost"],
    ),
    "credit_card": (
        [("card 4111 1111 1111 1111 ok", "4111 1111 1111 1111"),
         ("5500-0000-0000-0004", "5500-0000-0000-0004"), ("378282246310005", "378282246310005")],
        ["order 4111 1111 1111 1112", "1234567812345678", "0000 0000 0000 0000", "2024-01-15"],
    ),
    "iban": (
        [("IBAN DE89 3704 0044 0532 0130 00.", "DE89 3704 0044 0532 0130 00"),
         ("GB82WEST12345698765432", "GB82WEST12345698765432")],
        ["DE89 3704 0044 0532 0130 01", "XX12 3456 7890 1234 5678", "DE89"],
    ),
    "us_ssn": (
        [("ssn 123-45-6788 on file", "123-45-6788"), ("536 22 4410", "536 22 4410")],
        ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-6789", "1234-56-7890"],
    ),
    "phone_international": (
        [("call +44 20 7946 0958 today", "+44 20 7946 0958"), ("+1-415-555-0132", "+1-415-555-0132"),
         ("dial +1 234 5678", "+1 234 5678")],
        ["+1", "score +3 points", "+12 34"],
    ),
    "phone_nanp": (
        [("(415) 555-0132", "(415) 555-0132"), ("call 415.555.0132", "415.555.0132")],
        ["123-456-7890", "415-055-0132", "version 2.3.4"],
    ),
    "ipv4": (
        [("host 10.0.0.1.", "10.0.0.1"), ("192.168.1.254", "192.168.1.254"),
         ("at 1.2.3.4 now", "1.2.3.4")],
        ["1.2.3", "256.1.1.1", "version 1.2.3.4.5"],
    ),
    "ipv6": (
        [("addr 2001:db8::ff00:42:8329 up", "2001:db8::ff00:42:8329"), ("fe80::1", "fe80::1")],
        ["10:30:00", "std::vector", "a:b"],
    ),
    "bearer_token": (
        [("Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456", "abcdefghijklmnopqrstuvwxyz123456")],
        ["bearer of bad news"],
    ),
    "hex_secret": (
        [("secret 0123456789abcdef0123456789abcdef!", "0123456789abcdef0123456789abcdef")],
        ["deadbeef", "0123456789abcdef0123456789abcdeg"],
    ),
}  # fmt: skip


def test_every_builtin_detector_has_examples() -> None:
    assert set(EXAMPLES) == set(BUILTIN)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_detector_true_and_false_examples(name: str) -> None:
    detector = BUILTIN[name]
    positives, negatives = EXAMPLES[name]
    for text, value in positives:
        found = [text[s:e] for s, e in detector.find(text)]
        assert found == [value], (name, text, found)
    for text in negatives:
        assert list(detector.find(text)) == [], (name, text)


@pytest.mark.parametrize("name", sorted(n for n, d in BUILTIN.items() if d.digits or d.words))
def test_scan_prefilters_never_change_what_is_found(name: str) -> None:
    """``digits`` and ``words`` only skip a regex that could not have matched: the same
    findings as the bare regex on every example, on upper case, and on non-ASCII
    spellings that ``(?i)`` still matches (the long s, the Kelvin sign, Arabic-Indic
    digits)."""
    detector = BUILTIN[name]
    bare = dataclasses.replace(detector, digits=0, words=())
    positives, negatives = EXAMPLES[name]
    texts = [t for t, _ in positives] + negatives
    texts += [t.upper() for t in texts] + [t.swapcase() for t in texts]
    texts += ["pa\u017fsword: hunter2hunter", "Bearer \u212aabcdefghijklmnopqrstuvwxyz",
              "aw\u017f secret = AKIAabcdefghijklmnopqrstuvwxyz0123456789ab",
              "call \u0664\u0661\u0661\u0661 \u0664\u0661\u0661\u0661 \u0664\u0661\u0661\u0661 \u0664\u0661\u0661\u0661",
              "no digits and no words here at all"]  # fmt: skip
    for text in texts:
        assert scan([detector], text) == scan([bare], text), (name, text)


def test_checksums() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32")
    assert not iban_ok("GB82 WEST 1234 5698 7654 33")
    assert not iban_ok("GB82 WEST 1234 5698 7654")  # the country's length
    assert ssn_ok("123-45-6788")
    assert not ssn_ok("078-05-1120")  # the Woolworth wallet card
    assert github_token_ok(GITHUB)
    assert not github_token_ok(GITHUB[:-1] + "9")


def test_profiles_are_named_sets() -> None:
    names = {p: {d.name for d in PROFILES[p]} for p in RedactionProfile}
    assert names[RedactionProfile.OFF] == set()
    assert "github_token" in names[RedactionProfile.SECRETS]
    assert "email" not in names[RedactionProfile.SECRETS]
    assert {"email", "credit_card", "iban", "us_ssn", "ipv4"} <= names[RedactionProfile.PII]
    assert (
        names[RedactionProfile.SECRETS] | names[RedactionProfile.PII]
        < names[RedactionProfile.STRICT]
    )


def test_overlaps_resolve_to_one_finding() -> None:
    text = "postgres://app:s3cret@db.example.com:5432/prod"
    findings = select(scan(PROFILES[RedactionProfile.STRICT], text))
    assert [f.category for f in findings] == ["CONNECTION_STRING"]


def test_mask_is_stable_within_a_request_and_hash_is_keyed() -> None:
    detectors = PROFILES[RedactionProfile.PII]
    masker = Replacer(RedactionMode.MASK, b"")
    text, _ = redact("a@example.com b@example.com a@example.com", detectors, masker)
    assert text == "[EMAIL_1] [EMAIL_2] [EMAIL_1]"
    assert masker.restore("hi [EMAIL_2] [EMAIL_9]") == "hi b@example.com [EMAIL_9]"
    assert masker.answer_replacement("EMAIL", "c@example.com") == "[EMAIL_3]"
    assert masker.restore("[EMAIL_3]") == "[EMAIL_3]", "answer values are never restored"
    one = Replacer(RedactionMode.HASH, Replacer.tenant_key(b"k", "acme"))
    two = Replacer(RedactionMode.HASH, Replacer.tenant_key(b"k", "acme"))
    other = Replacer(RedactionMode.HASH, Replacer.tenant_key(b"k", "globex"))
    same = [redact("a@example.com", detectors, r)[0] for r in (one, two, other)]
    assert same[0] == same[1] != same[2]
    assert "example" not in same[0]


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (r"EMP-\d{6}", None),
        (r"(\d{3}-){2}\d{4}", None),
        (r"(?i)proj-[a-z]{4,10}", None),
        (r"\d+", "more than 128"),
        (r"(a{1,3}){1,5}", "inside another"),
        (r"(a|ab){1,9}", "alternatives inside"),
        (r"(a)\1", "backreferences"),
        (r"x?", "empty string"),
        (r"(", "not a valid"),
        ("a" * 600, "longer than"),
    ],
)
def test_custom_pattern_rules(pattern: str, problem: str | None) -> None:
    found = check_pattern(pattern)
    if problem is None:
        assert found is None
        assert max_width(pattern) <= 128
    else:
        assert found is not None
        assert problem in found


STREAM_VALUES = [
    "jane.doe@example.com", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00",
    "AKIAIOSFODNN7EXAMPLE", GITHUB, "postgres://app:s3cret@db:5432/prod", "+44 20 7946 0958",
    "123-45-6788", "password: hunter2x", JWT, PEM, "10.1.2.3", "2001:db8::1",
]  # fmt: skip


def _stream(plan: RedactionPlan, pieces: list[str]) -> str:
    replacer = Replacer(RedactionMode.MASK, b"")
    channel = TextChannel(plan.detectors, plan.holds, replacer.replacement, lambda f: None)
    return "".join(channel.feed(p) for p in pieces) + channel.flush()


@pytest.mark.parametrize("value", STREAM_VALUES)
def test_stream_redaction_at_every_boundary_equals_the_whole(value: str) -> None:
    plan = RedactionPlan(PROFILES[RedactionProfile.STRICT], RedactionMode.MASK)
    text = f"Before, {value} and after it."
    whole, findings = redact(text, plan.detectors, Replacer(RedactionMode.MASK, b""))
    assert findings
    for cut in range(1, len(text)):
        assert _stream(plan, [text[:cut], text[cut:]]) == whole, cut
    for first in range(1, len(text), 9):
        for second in range(first + 1, len(text), 13):
            pieces = [text[:first], text[first:second], text[second:]]
            assert _stream(plan, pieces) == whole, (first, second)
    assert _stream(plan, list(text)) == whole


def test_prose_is_held_back_only_by_the_word_in_progress() -> None:
    plan = RedactionPlan(PROFILES[RedactionProfile.STRICT], RedactionMode.MASK)
    channel = TextChannel(plan.detectors, plan.holds, lambda c, v: c, lambda f: None)
    assert channel.feed("the quick brown fo") == "the quick brown "
    assert channel.held == 2
    assert plan.window <= 72


def test_an_unfinished_private_key_block_overflows_instead_of_leaking() -> None:
    plan = RedactionPlan(PROFILES[RedactionProfile.SECRETS], RedactionMode.MASK)
    channel = TextChannel(plan.detectors, plan.holds, lambda c, v: f"[{c}]", lambda f: None)
    assert channel.feed("-----BEGIN PRIVATE KEY-----\n") == ""
    for _ in range(MAX_HOLD // 64 - 1):
        assert channel.feed("A" * 63 + "\n") == ""
    with pytest.raises(HoldOverflow):
        channel.feed("A" * 128)


def _digit_groups(rng: random.Random) -> str:
    """Groups of 1-4 digits between separators: numbers near every ``digits`` bound."""
    parts = [rng.choice(["", "+", "(", "DE", "GB", "at "])]
    for _ in range(rng.randint(1, 6)):
        parts.append("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 4))))
        parts.append(rng.choice([" ", "-", ".", "", ") ", "  "]))
    return "".join(parts)


def test_scan_prefilters_never_change_what_is_found_on_random_numbers() -> None:
    """Each builtin detector finds the same with its prefilters as without them on random
    numbers (cards, phones, SSNs, addresses with as few digits as a match can have: a bound
    one too high is caught here)."""
    rng = random.Random(20)
    detectors = list(BUILTIN.values())
    bare = [dataclasses.replace(d, digits=0, words=()) for d in detectors]
    found = 0
    for _ in range(20_000):
        text = _digit_groups(rng)
        findings = scan(detectors, text)
        assert findings == scan(bare, text), text
        found += len(findings)
    assert found > 500  # the generator does make numbers the detectors find


def test_a_detector_table_finds_what_each_detector_finds_alone() -> None:
    """The compiled table of a plan (prefilter rows, one regex of words) loses nothing: on
    every example, scanning the table finds what each detector's bare regex finds."""
    table = DetectorTable(list(BUILTIN.values()))
    texts = [t for positives, negatives in EXAMPLES.values() for t, _ in positives]
    texts += [t for _, negatives in EXAMPLES.values() for t in negatives]
    for text in texts + [t.upper() for t in texts]:
        alone = [
            Finding(start, end, d.name, d.category, d.confidence)
            for d in BUILTIN.values()
            for start, end in d.find(text)
        ]
        assert table.scan(text) == alone, text
