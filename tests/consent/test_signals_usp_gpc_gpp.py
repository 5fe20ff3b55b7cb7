"""US Privacy, Global Privacy Control and GPP (US national section) decoding.

GPP reference strings and values:
- IAB Global-Privacy-Platform "Core/Consent String Specification.md" (header examples,
  ``DBACNYA~...~1YNN``);
- IABTechLab/iabgpp-java UsNatTest (``BVVVkkkklWA.YA``: every notice 1, SaleOptOut 1,
  SharingOptOut 1, TargetedAdvertisingOptOut 1, Gpc true) and GppModelTest
  (``DBABLA~BVQqAAAAAgA.QA``, ``DBABLA~BAAAAAAAAQA.QA``).
"""

from __future__ import annotations

import pytest

from consent_filter.signals import SignalInvalid, decode_gpc, decode_gpp, decode_usp

OPT_OUT_ROWS = (("sale_or_share", "denied"), ("ads_personalization", "denied"))

# --- US Privacy -------------------------------------------------------------------------


def test_usp_opt_out_of_sale_denies_sale_and_ads() -> None:
    decision = decode_usp("1YYN")
    assert (decision.explicit_notice, decision.opted_out_of_sale, decision.lspa_covered) == (
        True,
        True,
        False,
    )
    assert decision.decisions == OPT_OUT_ROWS


@pytest.mark.parametrize("usp", ["1YNN", "1NNY", "1---", "1Y-N"])
def test_usp_without_opt_out_imports_nothing(usp: str) -> None:
    # N is "has not opted out": not a grant under opt_in, nothing to record under opt_out.
    assert decode_usp(usp).decisions == ()


def test_usp_flags_are_read_case_insensitively() -> None:
    assert decode_usp(" 1yyn ").decisions == OPT_OUT_ROWS


@pytest.mark.parametrize(
    ("usp", "reason"),
    [
        ("1YN", "must be 4 characters"),
        ("1YNNN", "must be 4 characters"),
        ("2YNN", "version must be 1"),
        ("1XNN", "flags must each be Y, N or -"),
        ("1Y N", "flags must each be Y, N or -"),
        ("", "empty US Privacy string"),
    ],
)
def test_malformed_usp_is_rejected(usp: str, reason: str) -> None:
    with pytest.raises(SignalInvalid, match=reason):
        decode_usp(usp)


# --- Global Privacy Control ---------------------------------------------------------------


@pytest.mark.parametrize("gpc", ["1", "Sec-GPC: 1", "sec-gpc:1", "SEC-GPC : 1 ", " 1 "])
def test_gpc_signal_denies_sale_and_ads(gpc: str) -> None:
    decision = decode_gpc(gpc)
    assert decision.enabled is True
    assert decision.decisions == OPT_OUT_ROWS


@pytest.mark.parametrize("gpc", ["0", "", "Sec-GPC: 0", "  "])
def test_absent_gpc_imports_nothing(gpc: str) -> None:
    decision = decode_gpc(gpc)
    assert decision.enabled is False
    assert decision.decisions == ()


@pytest.mark.parametrize("gpc", ["2", "yes", "true", "11", "X-GPC: 1", "Sec-GPC: on"])
def test_other_gpc_values_are_rejected(gpc: str) -> None:
    with pytest.raises(SignalInvalid, match="GPC value must be 1, 0 or 'Sec-GPC: 1'"):
        decode_gpc(gpc)


# --- GPP, US national section -------------------------------------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _b64(bits: str) -> str:
    bits += "0" * (-len(bits) % 6)
    return "".join(_ALPHABET[int(bits[i : i + 6], 2)] for i in range(0, len(bits), 6))


def _usnat(version: int, opt_outs: tuple[int, int, int], sensitive: int, child: int) -> str:
    """A usnat core segment: every notice 1, the given opt-outs, zero consents, MSPA 1/2/2."""
    fields = [1] * 6 + list(opt_outs) + [0] * (sensitive + child) + [0, 1, 2, 2]
    return _b64(format(version, "06b") + "".join(format(value, "02b") for value in fields))


# Header for sections 2, 6 and 7, written out from the spec's Range(Fibonacci) rules:
# Type 3, Version 1, 2 items; item 1 single, offset Fib "011" = 2; item 2 a group, offset
# Fib "1011" = 4 (first ID 6), length Fib "11" = 1 (last ID 7).
HEADER_2_6_7 = _b64("000011" + "000001" + "000000000010" + "0" + "011" + "1" + "1011" + "11")
# TC string section from the spec's GPP String Example 1.
SPEC_TCF_SECTION = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"


def test_gpp_usnat_opt_outs_deny_sale_and_ads() -> None:
    decision = decode_gpp("DBABLA~BVVVkkkklWA.YA")
    assert decision.section_ids == (7,)
    assert decision.usnat_version == 1
    assert decision.sale_opt_out == 1
    assert decision.sharing_opt_out == 1
    assert decision.targeted_advertising_opt_out == 1
    assert decision.gpc is True
    assert decision.decisions == OPT_OUT_ROWS


def test_gpp_usnat_without_gpc_subsection() -> None:
    # iabgpp-java UsNatTest.testDecodeWithGpcSegmentExcluded
    decision = decode_gpp("DBABLA~BVVVkkkklWA")
    assert decision.gpc is None
    assert decision.decisions == OPT_OUT_ROWS


def test_gpp_usnat_did_not_opt_out_imports_nothing() -> None:
    # Decoded by hand: B = version 1; V = 010101 and Q = 010000 -> SharingNotice,
    # SaleOptOutNotice, SharingOptOutNotice, TargetedAdvertisingOptOutNotice 1, the sensitive
    # data notices 0; q = 101010 -> SaleOptOut, SharingOptOut, TargetedAdvertisingOptOut 2
    # (did not opt out). ".QA": Q = 010000 -> sub-section type 1 (GPC), Gpc 0.
    decision = decode_gpp("DBABLA~BVQqAAAAAgA.QA")
    assert (
        decision.sale_opt_out,
        decision.sharing_opt_out,
        decision.targeted_advertising_opt_out,
        decision.gpc,
    ) == (2, 2, 2, False)
    assert decision.decisions == ()


def test_gpp_usnat_not_applicable_imports_nothing() -> None:
    decision = decode_gpp("DBABLA~BAAAAAAAAQA.QA")  # iabgpp-java GppModelTest.testDecode6
    assert (decision.sale_opt_out, decision.sharing_opt_out) == (0, 0)
    assert decision.decisions == ()


@pytest.mark.parametrize(
    ("opt_outs", "rows"),
    [
        ((1, 2, 2), (("sale_or_share", "denied"),)),
        ((2, 1, 0), (("sale_or_share", "denied"),)),
        ((2, 2, 1), (("ads_personalization", "denied"),)),
        ((0, 0, 0), ()),
    ],
)
def test_gpp_each_opt_out_denies_its_purpose(
    opt_outs: tuple[int, int, int], rows: tuple[tuple[str, str], ...]
) -> None:
    gpp = f"DBABLA~{_usnat(1, opt_outs, 12, 2)}"
    assert decode_gpp(gpp).decisions == rows


def test_gpp_gpc_subsection_alone_denies_sale_and_ads() -> None:
    gpp = f"DBABLA~{_usnat(1, (2, 2, 2), 12, 2)}.YA"  # Y = 011000: type 1, Gpc 1
    assert decode_gpp(gpp).decisions == OPT_OUT_ROWS


def test_gpp_usnat_version_2_layout() -> None:
    # Version 2 (MSPA 2024) has 16 sensitive data and 3 known-child fields.
    decision = decode_gpp(f"DBABLA~{_usnat(2, (1, 2, 0), 16, 3)}")
    assert decision.usnat_version == 2
    assert decision.decisions == (("sale_or_share", "denied"),)


def test_gpp_usnat_version_2_with_version_1_length_is_rejected() -> None:
    with pytest.raises(SignalInvalid, match="US national section is truncated"):
        decode_gpp(f"DBABLA~{_usnat(2, (1, 2, 0), 12, 2)}")


def test_gpp_finds_usnat_among_other_sections() -> None:
    gpp = f"{HEADER_2_6_7}~{SPEC_TCF_SECTION}~1YNN~BVVVkkkklWA.YA"
    decision = decode_gpp(gpp)
    assert decision.section_ids == (2, 6, 7)
    assert decision.decisions == OPT_OUT_ROWS


@pytest.mark.parametrize(
    "gpp",
    [
        # GPP spec String Example 2: EU TCF (2) and US Privacy (6)
        "DBACNYA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN",
        # GPP spec String Example 3: Canadian TCF (5) and US Privacy (6), a Fibonacci group
        "DBABjw~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN",
        "DBAA",  # no sections at all (iabgpp-java empty model)
    ],
)
def test_gpp_without_usnat_section_is_rejected(gpp: str) -> None:
    with pytest.raises(SignalInvalid, match="no US national section"):
        decode_gpp(gpp)


@pytest.mark.parametrize(
    ("gpp", "reason"),
    [
        ("", "empty GPP string"),
        ("garbage", "not a GPP string"),
        ("DB!BLA~BVVVkkkklWA", "GPP header is not base64url"),
        ("DBABLA", "lists 1 section\\(s\\) but the string has 0"),
        ("DBABLA~BVVVkkkklWA~1YNN", "lists 1 section\\(s\\) but the string has 2"),
        ("DBABLA~", "US national section is empty"),
        ("DBABLA~BVVV", "US national section is truncated"),
        ("DBABLA~z", "US national section version 51 is not supported"),
        ("DBABLA~BVVVkkkklWA.zz", "sub-section type 3 is unknown"),
        ("DCABLA~BVVVkkkklWA", "GPP version 2 is not supported"),
        ("DBAB", "GPP header is truncated"),
        ("DBAB" + "A" * 12, "malformed Fibonacci"),
        (f"DBABLA~{_usnat(1, (3, 2, 2), 12, 2)}", "undefined value 3"),
        ("D" * 20_000, "longer than"),
    ],
)
def test_malformed_gpp_is_rejected(gpp: str, reason: str) -> None:
    with pytest.raises(SignalInvalid, match=reason):
        decode_gpp(gpp)
