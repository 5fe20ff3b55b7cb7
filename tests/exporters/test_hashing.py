"""Normalization and hashing per destination format (shared/spec/exports.md, "Hashing profiles").

Expected values are either the platforms' published examples (source URL next to each) or
hand-checked: computed in a shell with ``printf '%s' VALUE | sha256sum`` (and
``| xxd -r -p | base64`` for base64) and pasted here, never computed by the code under test.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exporters.hashing import (
    FORMATS,
    HashedIdentifier,
    HashingConfigError,
    HashStats,
    hash_identifier,
    hash_rows,
    normalize_email,
    normalize_external_id,
    normalize_maid,
    normalize_phone,
)

UID2_DOC = "https://unifiedid.com/docs/getting-started/gs-normalization-encoding"
GOOGLE_DM_DOC = "https://developers.google.com/data-manager/api/get-started/formatting"
GOOGLE_DM_TESTS = "https://github.com/googleads/data-manager-python/blob/main/tests/formatter_test.py"
META_HELP = "https://www.facebook.com/business/help/2082575038703844"
META_SDK_TESTS = "https://github.com/facebook/facebook-python-business-sdk/blob/main/facebook_business/test/unit.py"


def hashed(kind: str, raw: str | None, fmt: str, country: str | None = None) -> str | None:
    result = hash_identifier(kind, raw, fmt, country)
    return None if result is None else result.value


# --- UID2: published examples (input, normalized, SHA-256 hex, base64) ---------------------

# Source: UID2_DOC, "Normalization Examples for Email" (IABTechLab/uid2docs,
# docs/getting-started/gs-normalization-encoding.md).
UID2_EMAILS = [
    (
        "MyEmail@example.com",
        "myemail@example.com",
        "16c18d336f0b250f0e2d907452ceb9658a74ecdae8bc94864c23122a72cc27a5",
        "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U=",
    ),
    (
        "MYEMAIL@example.com",
        "myemail@example.com",
        "16c18d336f0b250f0e2d907452ceb9658a74ecdae8bc94864c23122a72cc27a5",
        "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U=",
    ),
    (
        "My.Email@example.com",
        "my.email@example.com",
        "e22b53bc6f871274f3a62ab37a3caed7214fc14d676215a96a242fcfada1c81f",
        "4itTvG+HEnTzpiqzejyu1yFPwU1nYhWpaiQvz62hyB8=",
    ),
    (
        "JANESAOIRSE@example.com",
        "janesaoirse@example.com",
        "d6670e7a92007f1b5ff785f1fc81e53aa6d3d7bd06bdf5c473cdc7286c284b6d",
        "1mcOepIAfxtf94Xx/IHlOqbT170GvfXEc83HKGwoS20=",
    ),
    (
        "JaneSaoirse@example.com",
        "janesaoirse@example.com",
        "d6670e7a92007f1b5ff785f1fc81e53aa6d3d7bd06bdf5c473cdc7286c284b6d",
        "1mcOepIAfxtf94Xx/IHlOqbT170GvfXEc83HKGwoS20=",
    ),
    (
        "Jane.Saoirse@example.com",
        "jane.saoirse@example.com",
        "b196432c7b989a2ca91c83799957c515da53e6c13abf20b78fea94f117e90bf8",
        "sZZDLHuYmiypHIN5mVfFFdpT5sE6vyC3j+qU8RfpC/g=",
    ),
    (
        "JaneSaoirse+Work@example.com",
        "janesaoirse+work@example.com",
        "28aaee4815230cd3b4ebd88c515226550666e91ac019929e3adac3f66c288180",
        "KKruSBUjDNO069iMUVImVQZm6RrAGZKeOtrD9mwogYA=",
    ),
    (
        "JANE.SAOIRSE@gmail.com",
        "janesaoirse@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
    (
        "Jane.Saoirse@gmail.com",
        "janesaoirse@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
    (
        "JaneSaoirse+Work@gmail.com",
        "janesaoirse@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
    # Source: UID2_DOC, "Introduction" (the publisher example) and "Email Address Hash
    # Encoding" (user@example.com).
    (
        "JANESaoirse@gmail.com",
        "janesaoirse@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
    (
        "user@example.com",
        "user@example.com",
        "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514",
        "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ=",
    ),
    # Source: the UID2 client SDK's own test suite (IABTechLab/uid2-client-java,
    # src/test/java/com/uid2/client/InputUtilTests.java, emailProducesCorrectHash), the cases
    # not listed above: a +tag kept outside gmail.com, dropped inside it.
    (
        "JaneSaoirse+UID2@example.com",
        "janesaoirse+uid2@example.com",
        "6e143668c206593d5ecb8a7b2726af74d948438a5ed75febadcbf4bb58ebc427",
        "bhQ2aMIGWT1ey4p7JyavdNlIQ4pe11/rrcv0u1jrxCc=",
    ),
    (
        "JaneSaoirse+UID2@gmail.com",
        "janesaoirse@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
]


@pytest.mark.parametrize(("raw", "normalized", "hex_digest", "base64_digest"), UID2_EMAILS)
def test_uid2_published_email_examples(raw: str, normalized: str, hex_digest: str, base64_digest: str) -> None:
    assert normalize_email(raw, "uid2") == normalized
    assert hashed("email", raw, "uid2") == base64_digest
    # The published hex digest is the SHA-256 of the normalized form: our plain `sha256`
    # profile sends exactly that for the normalized address.
    assert hashed("email", normalized, "sha256") == hex_digest


def test_uid2_published_unnormalized_hash_is_not_what_we_send() -> None:
    # Source: UID2_DOC, "Introduction": VpLX... is the hash of the *un-normalized*
    # JANESaoirse@gmail.com, the mistake the page warns about.
    assert hashed("email", "JANESaoirse@gmail.com", "uid2") != ("VpLXEp5N1bj/V1WzjgZsC+FfuYdntAOywSVIO00FD/E=")


def test_uid2_published_gmail_rule_examples() -> None:
    # Source: UID2_DOC, "Email Address Normalization", step 3.
    assert normalize_email("jane.doe@gmail.com", "uid2") == "janedoe@gmail.com"
    assert normalize_email("janedoe+home@gmail.com", "uid2") == "janedoe@gmail.com"


def test_uid2_published_phone_example() -> None:
    # Source: UID2_DOC, "Phone Number Normalization" (US: 1 (234) 567-8901 -> +12345678901)
    # and "Phone Number Hash Encoding" (hex 10e6f0b4..., base64 EObwtHBU...).
    assert normalize_phone("1 (234) 567-8901", "US", "uid2") == "+12345678901"
    assert normalize_phone("+1 (234) 567-8901", None, "uid2") == "+12345678901"
    assert hashed("phone", "1 (234) 567-8901", "uid2", "US") == ("EObwtHBUqDNZR33LNSMdtt5cafsYFuGmuY4ZLenlue4=")
    assert hashed("phone", "+12345678901", "sha256") == (
        "10e6f0b47054a83359477dcb35231db6de5c69fb1816e1a6b98e192de9e5b9ee"
    )


def test_uid2_published_sydney_phone_normalization() -> None:
    # Source: UID2_DOC, "Phone Number Normalization": Sydney (02) 1234 5678 -> +61212345678.
    # (The page's Singapore example "65 1243 5678 -> +6512345678" changes digits, a typo;
    # libphonenumber does not call either form a valid Singapore number, so it is not used.)
    assert normalize_phone("(02) 1234 5678", "AU", "uid2") == "+61212345678"


# --- Google: Data Manager API formatting rules and Google's own utility tests --------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        # Source: GOOGLE_DM_TESTS, test_format_email_address_valid_inputs.
        ("QuinnY@example.com", "quinny@example.com"),
        ("QuinnY@EXAMPLE.com", "quinny@example.com"),
        ("Jefferson.Loves.hiking@gmail.com", "jeffersonloveshiking@gmail.com"),
        ("Jefferson.LOVES.Hiking@googlemail.com", "jeffersonloveshiking@googlemail.com"),
        # Source: GOOGLE_DM_DOC, email_address: other domains keep dots and plus signs.
        ("user.name+NYC@Example.com", "user.name+nyc@example.com"),
    ],
)
def test_google_published_email_normalization(raw: str, normalized: str) -> None:
    assert normalize_email(raw, "google") == normalized


@pytest.mark.parametrize("raw", ["", "  ", "quinn", " @googlemail.com", " ...@gmail.com"])
def test_google_published_invalid_emails_are_dropped(raw: str) -> None:
    # Source: GOOGLE_DM_TESTS, test_format_email_address_invalid_inputs.
    assert normalize_email(raw, "google") is None
    assert hash_identifier("email", raw, "google") is None


@pytest.mark.parametrize(
    "raw",
    [
        "alexz@example.com",
        "  alexz@example.com",
        "  ALEXZ@example.com   ",
        "  alexz@EXAMPLE.com   ",
    ],
)
def test_google_published_email_hashes(raw: str) -> None:
    # Source: GOOGLE_DM_TESTS, test_process_email_address_valid_inputs_{hex,base64}_encoding.
    assert hashed("email", raw, "google") == ("509e933019bb285a134a9334b8bb679dff79d0ce023d529af4bd744d47b4fd8a")
    # Same SHA-256, base64-encoded: what UID2 (no gmail rule applies here) sends.
    assert hashed("email", raw, "uid2") == "UJ6TMBm7KFoTSpM0uLtnnf950M4CPVKa9L10TUe0/Yo="


@pytest.mark.parametrize(
    ("raw", "country"),
    [
        # Source: GOOGLE_DM_TESTS, test_process_phone_number_valid_inputs_*.
        ("+18005550100", None),
        ("   +1-800-555-0100", None),
        ("1-800-555-0100   ", "US"),
        # Source: GOOGLE_DM_DOC, phone_number: (800)555-0100 -> +18005550100.
        ("(800)555-0100", "US"),
    ],
)
def test_google_published_phone_hashes(raw: str, country: str | None) -> None:
    assert normalize_phone(raw, country, "google") == "+18005550100"
    assert hashed("phone", raw, "google", country) == (
        "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30"
    )
    assert hashed("phone", raw, "uid2", country) == "+09zpuxf23B31WTN0iw1VLQ85JFoVQw7EsVHt4xRezA="


@pytest.mark.parametrize(
    ("raw", "country"),
    [
        # Source: GOOGLE_DM_TESTS, test_format_phone_number_valid_inputs (UK cases); without a
        # "+" we read the number in the profile's country (GB), which recognizes the 44.
        ("441134960987", "GB"),
        ("+441134960987", None),
        ("+44-113-496-0987", None),
    ],
)
def test_google_published_uk_phone_normalization(raw: str, country: str | None) -> None:
    assert normalize_phone(raw, country, "google") == "+441134960987"


# --- Meta: help centre examples, SDK test vectors ------------------------------------------


@pytest.mark.parametrize(
    ("raw", "country", "normalized", "hex_digest"),
    [
        # Source: META_HELP, "Phone number" examples (with country code, with or without
        # punctuation); Meta wants E.164 digits without "+". Hashes hand-checked.
        (
            "1-234-567-8910",
            "US",
            "12345678910",
            "63640264849a87c90356129d99ea165e37aa5fabc1fea46906df1a7ca50db492",
        ),
        (
            "12345678910",
            "US",
            "12345678910",
            "63640264849a87c90356129d99ea165e37aa5fabc1fea46906df1a7ca50db492",
        ),
        (
            "+44 844 412 4653",
            None,
            "448444124653",
            "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383",
        ),
    ],
)
def test_meta_published_phone_examples(raw: str, country: str | None, normalized: str, hex_digest: str) -> None:
    assert normalize_phone(raw, country, "meta") == normalized
    assert hashed("phone", raw, "meta", country) == hex_digest


def test_meta_published_madid_examples_are_sent_lowercase_unhashed() -> None:
    # Source: META_HELP, "Mobile advertiser ID" examples.
    assert hashed("maid", "AECE52E7-03EE-455A-B3C4-E57283966239", "meta") == ("aece52e7-03ee-455a-b3c4-e57283966239")
    assert hashed("maid", "BEBE52E7-03EE-455A-B3C4-E57283966239", "meta") == ("bebe52e7-03ee-455a-b3c4-e57283966239")


def test_meta_published_email_examples_keep_dots() -> None:
    # Source: META_HELP, "Email address" examples: Meta has no gmail rule. Hash hand-checked.
    assert normalize_email("your.name@gmail.com", "meta") == "your.name@gmail.com"
    assert hashed("email", " Your.Name@Gmail.com ", "meta") == (
        "1c26f08bba2c87e8db547da81c7071924be289ebcf3e56709343ba86cc7c24f8"
    )


def test_meta_sdk_test_vector_for_trimmed_value() -> None:
    # Source: META_SDK_TESTS, CustomAudienceTestCase.test_format_params: "  test  " is
    # trimmed before hashing to 9f86d081... (SHA-256 of "test").
    assert hashed("external_id", "  test  ", "meta") == (
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )


# --- Hand-checked examples, every format x identifier type --------------------------------

HAND_CHECKED = [
    # (kind, raw, fmt, country, expected)
    (
        "email",
        " John.Doe@Example.COM\t",
        "sha256",
        None,
        "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f",
    ),
    (
        "email",
        " John.Doe@GoogleMail.com",
        "google",
        None,
        "f07280f43150f779598094600662ad3c94d7c0a78c78b15c4056e4a38df260b9",
    ),
    (
        "email",
        "Jo hn@Example.com",
        "google",
        None,
        "855f96e983f1f8e8be944692b6f719fd54329826cb62e98015efee8e2e071dd4",
    ),
    (
        "email",
        "John.Doe@gmail.com",
        "meta",
        None,
        "375320dd9ae7ed408002f3768e16cb5f28c861062fd50dff9a3bff62e9dce4ef",
    ),
    ("email", "JANE.DOE@example.com", "uid2", None, "huC55WwXzE0SOH4ZSbhQU/vnO8POWhGIcTqdMAzGEz0="),
    (
        "phone",
        "020 7946 0958",
        "sha256",
        "GB",
        "f0bf0228144d9fe2bdf1da2d8ca698f17bf1410ee688b075c27062e47b6f0b6d",
    ),
    (
        "phone",
        "(415) 555-2671",
        "google",
        "US",
        "cb6880e416769253645cb9c6b8989154bf66a56a77fc14c81fb1019663cbb928",
    ),
    (
        "phone",
        "0176 54648789",
        "meta",
        "DE",
        "2df1ef67641bbccfc63f2f06acbf45b0e080074706ff53dd7be7bb03636cb938",
    ),
    ("phone", "0176-54648789", "uid2", "de", "5F2LGmCK5KbtXIBcLTwD8LEZXuMzuy3uR4K/ODYuQhg="),
    (
        "maid",
        "AECE52E7-03EE-455A-B3C4-E57283966239 ",
        "sha256",
        None,
        "e6a11334660bb4c2d68090399aaf9d80b433a569b993c5e32e6cad9bcf550e11",
    ),
    (
        "maid",
        "AECE52E7-03EE-455A-B3C4-E57283966239",
        "google",
        None,
        "aece52e7-03ee-455a-b3c4-e57283966239",
    ),
    (
        "external_id",
        " CRM-00042 ",
        "sha256",
        None,
        "032f71892cc688bcd6a04bb26d7fb491e42fb3717eadc3c224cf2c8e40eeffa4",
    ),
    (
        "external_id",
        "CRM-00042",
        "google",
        None,
        "032f71892cc688bcd6a04bb26d7fb491e42fb3717eadc3c224cf2c8e40eeffa4",
    ),
]


@pytest.mark.parametrize(("kind", "raw", "fmt", "country", "expected"), HAND_CHECKED)
def test_hand_checked_examples(kind: str, raw: str, fmt: str, country: str | None, expected: str) -> None:
    result = hash_identifier(kind, raw, fmt, country)
    assert result is not None
    assert result.value == expected
    assert (result.kind, result.fmt) == (kind, fmt)


def test_gmail_rules_differ_between_google_and_uid2() -> None:
    raw = "Jane.Saoirse+Work@gmail.com"
    assert normalize_email(raw, "sha256") == "jane.saoirse+work@gmail.com"
    assert normalize_email(raw, "meta") == "jane.saoirse+work@gmail.com"
    assert normalize_email(raw, "google") == "janesaoirse+work@gmail.com"
    assert normalize_email(raw, "uid2") == "janesaoirse@gmail.com"
    assert normalize_email("Jane.Saoirse@googlemail.com", "uid2") == "jane.saoirse@googlemail.com"


def test_google_removes_inner_ascii_whitespace_only() -> None:
    assert normalize_email(" jo\thn @ex ample.com\n", "google") == "john@example.com"
    assert normalize_email("jo hn@example.com", "sha256") == "jo hn@example.com"
    # NBSP is not ASCII whitespace: kept (see normalize.py on why).
    assert normalize_email("\u00a0john@example.com", "sha256") == "\u00a0john@example.com"


def test_lowercasing_is_ascii_only() -> None:
    assert normalize_email("ÉMILE@Exemple.FR", "sha256") == "Émile@exemple.fr"


# --- Phones ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "country", "e164"),
    [
        ("020 7946 0958", "GB", "+442079460958"),
        ("07911 123456", "GB", "+447911123456"),
        ("0044 20 7946 0958", "GB", "+442079460958"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "us", "+14155552671"),
        ("1 415 555 2671", "US", "+14155552671"),
        ("030 12345678", "DE", "+493012345678"),
        ("0151 12345678", "DE", "+4915112345678"),
        ("+49 151 12345678", "US", "+4915112345678"),
    ],
)
def test_phone_without_plus_is_read_in_the_profile_country(raw: str, country: str, e164: str) -> None:
    assert normalize_phone(raw, country, "sha256") == e164
    assert normalize_phone(raw, country, "meta") == e164[1:]


@pytest.mark.parametrize(
    ("raw", "country"),
    [
        ("020 7946 0958", None),  # no "+" and no country: cannot be read
        ("020 7946 0958", ""),
        ("020 7946 0958", "UK"),  # not an ISO 3166 code (GB is): not guessed
        ("555-0100", "US"),  # too short
        ("+1 123 456 7890", None),  # NANP area codes never start with 1
        ("+491511234567", None),  # one digit short for a German mobile
        ("not a phone", "US"),
        ("", "US"),
        ("   ", "US"),
        (None, "US"),
    ],
)
def test_invalid_phones_are_dropped(raw: str | None, country: str | None) -> None:
    assert normalize_phone(raw, country, "sha256") is None
    assert hash_identifier("phone", raw, "google", country) is None


def test_phone_given_as_integer_is_read_in_country() -> None:
    assert normalize_phone(14155552671, "US", "google") == "+14155552671"


# --- MAIDs, external ids, refused types ------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "00000000-0000-0000-0000-000000000000",  # iOS "limit ad tracking": identifies no one
        "AECE52E703EE455AB3C4E57283966239",  # no dashes
        "aece52e7-03ee-455a-b3c4-e5728396623",  # too short
        "gece52e7-03ee-455a-b3c4-e57283966239",  # not hex
        "",
        None,
    ],
)
def test_invalid_maids_are_dropped(raw: str | None) -> None:
    assert normalize_maid(raw, "google") is None
    assert hash_identifier("maid", raw, "sha256") is None


def test_uid2_refuses_maids_and_external_ids() -> None:
    with pytest.raises(HashingConfigError, match="does not accept"):
        hash_identifier("maid", "AECE52E7-03EE-455A-B3C4-E57283966239", "uid2")
    with pytest.raises(HashingConfigError, match="does not accept"):
        normalize_external_id("CRM-1", "uid2")
    with pytest.raises(HashingConfigError, match="does not accept"):
        list(hash_rows("uid2", ["email", "maid"], [("a@b.co", "x", "US")]))


def test_unknown_format_and_kind_are_configuration_errors() -> None:
    with pytest.raises(HashingConfigError, match="unknown hashing format"):
        hash_identifier("email", "a@b.co", "md5")
    with pytest.raises(HashingConfigError, match="unknown identifier type"):
        hash_identifier("fax", "123", "sha256")


def test_external_id_is_trimmed_and_blank_is_missing() -> None:
    assert normalize_external_id("  CRM-00042\n", "meta") == "CRM-00042"
    assert normalize_external_id(" \t ", "meta") is None
    assert normalize_external_id(42, "sha256") == "42"


# --- Emails: invalid inputs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "john.example.com",  # no @
        "john@example",  # no dot in the domain
        "john@@example.com",
        "jo@hn@example.com",
        "@example.com",  # empty local part
        " \t@example.com",
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_invalid_emails_are_dropped(raw: str | None, fmt: str) -> None:
    assert normalize_email(raw, fmt) is None
    assert hash_identifier("email", raw, fmt) is None


def test_gmail_local_part_that_normalizes_to_nothing_is_dropped() -> None:
    assert normalize_email("...@gmail.com", "google") is None
    assert normalize_email("+promo@gmail.com", "uid2") is None
    assert normalize_email("+promo@gmail.com", "google") == "+promo@gmail.com"


# --- HashedIdentifier ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "fmt"),
    [
        ("jane.doe@example.com", "email", "sha256"),
        ("+14155552671", "phone", "google"),
        ("14155552671", "phone", "meta"),
        ("836F82DB99121B3481011F16B49DFA5FBC714A0D1B1B9F784A1EBBBF5B39577F", "email", "sha256"),
        ("836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577", "email", "sha256"),
        ("huC55WwXzE0SOH4ZSbhQU/vnO8POWhGIcTqdMAzGEz0=", "email", "sha256"),  # base64 on hex
        ("836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f", "email", "uid2"),
        ("huC55WwXzE0SOH4ZSbhQU/vnO8POWhGIcTqdMAzGEz1=", "email", "uid2"),  # 33rd byte bits
        ("aece52e7-03ee-455a-b3c4-e57283966239", "maid", "sha256"),  # sha256 hashes MAIDs
        ("AECE52E7-03EE-455A-B3C4-E57283966239", "maid", "meta"),  # not normalized
        ("00000000-0000-0000-0000-000000000000", "maid", "google"),
        ("aece52e7-03ee-455a-b3c4-e57283966239", "email", "google"),  # plain only for MAIDs
    ],
)
def test_hashed_identifier_refuses_raw_values(value: str, kind: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="value withheld") as error:
        HashedIdentifier(value, kind, fmt)
    assert value not in str(error.value)


def test_hashed_identifier_accepts_encoded_values_and_hides_device_ids() -> None:
    hex_id = HashedIdentifier("836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f", "email", "sha256")
    b64_id = HashedIdentifier("huC55WwXzE0SOH4ZSbhQU/vnO8POWhGIcTqdMAzGEz0=", "email", "uid2")
    maid = HashedIdentifier("aece52e7-03ee-455a-b3c4-e57283966239", "maid", "meta")
    assert str(hex_id) == "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f"
    assert str(b64_id) == "huC55WwXzE0SOH4ZSbhQU/vnO8POWhGIcTqdMAzGEz0="
    assert "aece52e7" not in repr(maid)
    with pytest.raises(AttributeError):
        hex_id.value = "x"  # type: ignore[misc]  # frozen: the refused assignment is the test


# --- hash_rows -------------------------------------------------------------------------------


def test_hash_rows_lines_up_with_input_and_counts_drops() -> None:
    rows = [
        (" John.Doe@Example.COM\t", "020 7946 0958", "GB"),
        ("not-an-email", "(415) 555-2671", "US"),
        (None, "555", "US"),
        ("", None, None),
        ("Jo hn@Example.com", "0176 54648789", "DE"),
    ]
    stats = HashStats(kinds=("email", "phone"))
    out = list(hash_rows("sha256", ["email", "phone"], rows, stats, chunk_rows=2))
    assert out == [
        (
            "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f",
            "f0bf0228144d9fe2bdf1da2d8ca698f17bf1410ee688b075c27062e47b6f0b6d",
        ),
        (None, "cb6880e416769253645cb9c6b8989154bf66a56a77fc14c81fb1019663cbb928"),
        (None, None),
        (None, None),
        # sha256 keeps inner whitespace; hand-checked: printf '%s' 'jo hn@example.com'
        (
            "381efbe3ad5652e84a9c88ddf9a433d1d23a32635104a56538893b4568f74bcf",
            "e45d8b1a608ae4a6ed5c805c2d3c03f0b1195ee333bb2dee4782bf38362e4218",
        ),
    ]
    assert stats.as_dict() == {
        "rows": 5,
        "no_identifier": 2,
        "hashed": {"email": 2, "phone": 3},
        "missing": {"email": 2, "phone": 1},
        "dropped": {"email": 1, "phone": 1},
    }


def test_hash_rows_uid2_base64_and_meta_plain_maid() -> None:
    assert list(hash_rows("uid2", ["email"], [("JANESaoirse@gmail.com", None)])) == [
        ("ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",)
    ]
    assert list(hash_rows("meta", ["maid"], [("AECE52E7-03EE-455A-B3C4-E57283966239", "")])) == [
        ("aece52e7-03ee-455a-b3c4-e57283966239",)
    ]


def test_hash_rows_reads_a_non_text_email_cell_as_its_text() -> None:
    # An email column of another type (here INTEGER values) is dropped as invalid, not a crash;
    # a typed cell whose text is an email is hashed as that text.
    class Cell:
        def __str__(self) -> str:
            return "Jane@Example.com"

    stats = HashStats(kinds=("email",))
    assert list(hash_rows("sha256", ["email"], [(12345, None), (Cell(), None)], stats)) == [
        (None,),
        # printf '%s' 'jane@example.com' | sha256sum
        ("8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d",),
    ]
    assert (stats.dropped["email"], stats.hashed["email"]) == (1, 1)


def test_hash_rows_rejects_rows_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="every row must have 3 values"):
        list(hash_rows("sha256", ["email", "phone"], [("a@b.co", "US")]))
    with pytest.raises(ValueError, match="every row must have 2 values"):
        list(hash_rows("sha256", ["email"], [("a@b.co", "US"), ("a@b.co",)]))


def test_hash_rows_rejects_repeated_kinds() -> None:
    with pytest.raises(HashingConfigError, match="repeat"):
        list(hash_rows("sha256", ["email", "email"], []))


# --- Properties ------------------------------------------------------------------------------

_LOCAL_CHARS = string.ascii_letters + string.digits + "._+-"
_locals = st.text(alphabet=_LOCAL_CHARS, min_size=1, max_size=20)
_other_domains = st.from_regex(r"[a-z0-9-]{1,12}\.(com|org|co\.uk|de|io)", fullmatch=True).filter(
    lambda d: d not in {"gmail.com", "googlemail.com"}
)
_gmail_domains = st.sampled_from(["gmail.com", "googlemail.com", "GMail.com", "GOOGLEMAIL.COM"])
_emails = st.builds(lambda local, domain: f"{local}@{domain}", _locals, st.one_of(_other_domains, _gmail_domains))
_ascii_ws = st.text(alphabet=" \t\n\r\x0b\x0c", max_size=3)


def _flip_case(text: str, flips: list[bool]) -> str:
    padded = flips + [False] * len(text)
    return "".join(c.swapcase() if f else c for c, f in zip(text, padded, strict=False))


@settings(max_examples=300, deadline=None)
@given(email=_emails, fmt=st.sampled_from(FORMATS))
def test_normalizing_twice_changes_nothing(email: str, fmt: str) -> None:
    once = normalize_email(email, fmt)
    assume(once is not None)
    assert normalize_email(once, fmt) == once


@settings(max_examples=300, deadline=None)
@given(
    email=_emails,
    fmt=st.sampled_from(FORMATS),
    before=_ascii_ws,
    after=_ascii_ws,
    flips=st.lists(st.booleans(), max_size=40),
)
def test_surrounding_whitespace_and_case_never_change_the_hash(
    email: str, fmt: str, before: str, after: str, flips: list[bool]
) -> None:
    original = hashed("email", email, fmt)
    assume(original is not None)
    variant = before + _flip_case(email, flips) + after
    assert hashed("email", variant, fmt) == original


@settings(max_examples=200, deadline=None)
@given(
    device=st.uuids().map(str),
    fmt=st.sampled_from([f for f in FORMATS if f != "uid2"]),  # uid2 refuses MAIDs
    before=_ascii_ws,
    after=_ascii_ws,
    flips=st.lists(st.booleans(), max_size=36),
)
def test_surrounding_whitespace_and_case_never_change_a_maid(
    device: str, fmt: str, before: str, after: str, flips: list[bool]
) -> None:
    original = hashed("maid", device, fmt)
    assume(original is not None)  # the all-zero id is dropped
    assert hashed("maid", before + _flip_case(device, flips) + after, fmt) == original


@settings(max_examples=200, deadline=None)
@given(
    phone=st.sampled_from(["+14155550123", "+442079460136", "+5511979381844", "+33612345678"]),
    fmt=st.sampled_from(FORMATS),
    before=_ascii_ws,
    after=_ascii_ws,
)
def test_surrounding_whitespace_never_changes_a_phone_hash(phone: str, fmt: str, before: str, after: str) -> None:
    original = hashed("phone", phone, fmt)
    assert original is not None
    assert hashed("phone", before + phone + after, fmt) == original


@settings(max_examples=300, deadline=None)
@given(local=_locals, domain=_other_domains, fmt=st.sampled_from(FORMATS))
def test_gmail_rules_never_touch_other_domains(local: str, domain: str, fmt: str) -> None:
    normalized = normalize_email(f"{local}@{domain}", fmt)
    assert normalized == f"{local.lower()}@{domain}"


@settings(max_examples=200, deadline=None)
@given(local=_locals)
def test_gmail_rules_apply_to_the_right_domains(local: str) -> None:
    plain = local.lower()
    google_gmail = normalize_email(f"{local}@gmail.com", "google")
    google_googlemail = normalize_email(f"{local}@googlemail.com", "google")
    uid2_gmail = normalize_email(f"{local}@gmail.com", "uid2")
    uid2_googlemail = normalize_email(f"{local}@googlemail.com", "uid2")
    no_dots = plain.replace(".", "")
    no_tag = plain.partition("+")[0].replace(".", "")
    assert google_gmail == (f"{no_dots}@gmail.com" if no_dots else None)
    assert google_googlemail == (f"{no_dots}@googlemail.com" if no_dots else None)
    assert uid2_gmail == (f"{no_tag}@gmail.com" if no_tag else None)
    assert uid2_googlemail == f"{plain}@googlemail.com"  # UID2's rule is gmail.com only


@settings(max_examples=100, deadline=None)
@given(
    national=st.sampled_from([("GB", "020 7946 0958"), ("US", "(415) 555-2671"), ("DE", "030 12345678")]),
    before=_ascii_ws,
    after=_ascii_ws,
)
def test_phone_normalization_is_idempotent(national: tuple[str, str], before: str, after: str) -> None:
    country, raw = national
    once = normalize_phone(before + raw + after, country, "sha256")
    assert once is not None
    assert normalize_phone(once, None, "sha256") == once
    assert normalize_phone(once, "JP", "google") == once
