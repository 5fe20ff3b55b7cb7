"""The names a project and the exporters share: identifier types and destination formats.

Kept in a module of its own, importing nothing: `audience.toml` is checked against these
names on every command, without loading the hashing code (sqlglot dialects, phonenumbers).
What each format does to each identifier type is exporters/hashing/profiles.py.
"""

from __future__ import annotations

EMAIL = "email"
PHONE = "phone"
MAID = "maid"
EXTERNAL_ID = "external_id"
#: Identifier types, in the order columns and hashed values are laid out everywhere.
IDENTIFIER_TYPES: tuple[str, ...] = (EMAIL, PHONE, MAID, EXTERNAL_ID)

#: Destination formats (shared/spec/exports.md, "Hashing profiles"); each has one profile.
FORMATS: tuple[str, ...] = ("sha256", "google", "meta", "uid2")
