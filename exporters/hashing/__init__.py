"""Identifier normalization and hashing per destination format (``shared/spec/exports.md``).

Only hashed identifiers leave: exporters take ``HashedIdentifier`` values (one at a time via
``hash_identifier``) or the encoded strings of ``hash_rows`` (the bulk path), or hash inside
the warehouse with ``sql_hashed_expression`` where that is exact.
"""

from exporters.hashing.batch import HashStats, check_kinds, hash_rows
from exporters.hashing.identifier import (
    EncodedShape,
    HashedIdentifier,
    encoded_shape,
    hash_identifier,
    is_encoded_value,
)
from exporters.hashing.normalize import (
    WHITESPACE,
    normalize_email,
    normalize_external_id,
    normalize_maid,
    normalize_phone,
)
from exporters.hashing.profiles import (
    EMAIL,
    EXTERNAL_ID,
    FORMATS,
    KINDS,
    MAID,
    PHONE,
    PROFILES,
    Encoding,
    HashingConfigError,
    MaidMode,
    Profile,
    get_profile,
)
from exporters.hashing.sql import SQL_DIALECTS, sql_hashed_expression

__all__ = [
    "EMAIL",
    "EXTERNAL_ID",
    "FORMATS",
    "KINDS",
    "MAID",
    "PHONE",
    "PROFILES",
    "SQL_DIALECTS",
    "WHITESPACE",
    "EncodedShape",
    "Encoding",
    "HashStats",
    "HashedIdentifier",
    "HashingConfigError",
    "MaidMode",
    "Profile",
    "check_kinds",
    "encoded_shape",
    "get_profile",
    "hash_identifier",
    "hash_rows",
    "is_encoded_value",
    "normalize_email",
    "normalize_external_id",
    "normalize_maid",
    "normalize_phone",
    "sql_hashed_expression",
]
