"""Log lines written through the configured structlog never carry raw identifiers."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
import structlog

from exporters.redaction import configure_logging, redact_identifiers, redact_text

EMAIL = "Jane.Doe+promo@Example.co.uk"
PHONES = ["+44 20 7946 0958", "(415) 555-2671", "020-7946-0958", "+4915112345678"]
IDFA = "AECE52E7-03EE-455A-B3C4-E57283966239"
AAID = "38400000-8cf0-11bd-b23e-10b96e40000d"
HEX_DEVICE = "0123456789abcdef0123456789ABCDEF"
RAW = [EMAIL, *PHONES, IDFA, AAID, HEX_DEVICE]
DIGITS_OF_PHONES = ["2079460958", "4155552671", "15112345678"]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def assert_clean(output: str) -> None:
    for raw in RAW:
        assert raw not in output
        assert raw.lower() not in output
    squashed = "".join(c for c in output if c.isdigit() or c == "\n")
    for digits in DIGITS_OF_PHONES:
        assert digits not in squashed


def log_everything() -> None:
    log = structlog.get_logger("exporter")
    log.info(f"uploading for {EMAIL}", phone=PHONES[0], device=IDFA, count=1234567)
    log.warning(
        "batch rejected",
        rows=[{"email": EMAIL, "phones": PHONES}, (AAID, HEX_DEVICE)],
        **{EMAIL: "as a key"},
    )
    bound = log.bind(member={"contact": f"call {PHONES[1]} or mail {EMAIL}"})
    bound.error("retrying")
    try:
        raise ValueError(f"destination refused {EMAIL} / {PHONES[2]} / {IDFA}")
    except ValueError:
        log.exception("upload failed")
    logging.getLogger("boto3.client").warning("stdlib record %s %s", EMAIL, PHONES[3])


def test_json_lines_carry_no_email_phone_or_device_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    log_everything()
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 5
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == [
        "uploading for [redacted-email]",
        "batch rejected",
        "retrying",
        "upload failed",
        "stdlib record [redacted-email] [redacted-phone]",
    ]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", e["timestamp"]) for e in events)
    assert events[0]["phone"] == "[redacted-phone]"
    assert events[0]["device"] == "[redacted-device-id]"
    assert events[0]["count"] == 1234567  # numbers are not strings: left alone
    assert events[1]["rows"] == [
        {"email": "[redacted-email]", "phones": ["[redacted-phone]"] * 4},
        ["[redacted-device-id]", "[redacted-device-id]"],
    ]
    assert events[1]["[redacted-email]"] == "as a key"
    assert events[2]["member"] == {"contact": "call [redacted-phone] or mail [redacted-email]"}
    assert "ValueError: destination refused [redacted-email] / [redacted-phone] / " in events[3]["exception"]
    assert_clean(captured.err)


def test_console_lines_carry_no_email_phone_or_device_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json=False, level="DEBUG")
    log_everything()
    structlog.get_logger().debug("debug line", email=EMAIL)
    err = capsys.readouterr().err
    assert "uploading for [redacted-email]" in err
    assert "debug line" in err
    assert "Traceback (most recent call last)" in err
    assert_clean(err)


def test_level_filters_and_redaction_is_always_configured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json=True, level="warning")
    assert redact_identifiers in structlog.get_config()["processors"]
    structlog.get_logger().info("hidden", email=EMAIL)
    structlog.get_logger().warning("shown")
    lines = capsys.readouterr().err.strip().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["shown"]


def test_unknown_level_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging(json=True, level="LOUD")


@pytest.mark.parametrize(
    "text",
    [
        "at 2024-05-01 12:00:00 and 2024-05-01T12:00:00.123456Z",
        "connect 127.0.0.1:5432 and 10.20.30.40",
        "version 1.2.3 build 4711",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "commit 136877d0a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "run 42 of 100 took 1.5 s, 123456 rows",
        "hashed huC55WwXzE0SOH4ZSbhQU/vnO8POWhGIcTqdMAzGEz0=",
    ],
)
def test_operational_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me: a.b+c@d.example.org.", "mail me: [redacted-email]."),
        ("tel:+1-415-555-2671", "tel:[redacted-phone]"),
        ("(415) 555-2671 ext", "[redacted-phone] ext"),
        ("id=aece52e7-03ee-455a-b3c4-e57283966239;", "id=[redacted-device-id];"),
        ("rows=1234567", "rows=[redacted-phone]"),
    ],
)
def test_identifiers_inside_text_are_replaced(text: str, expected: str) -> None:
    assert redact_text(text) == expected
