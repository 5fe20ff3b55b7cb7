"""The consent policy and export target as the consent filter sees them (small, typed)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The consent table's columns, in order (shared/spec/consent.md, "Consent table"): what a
#: project's consent table must have and what `audience consent import` writes.
CONSENT_COLUMNS: tuple[str, ...] = ("profile_key", "purpose", "status", "updated_at", "expires_at", "source")

# EU 27 plus Iceland, Liechtenstein and Norway (ISO 3166-1 alpha-2; Greece is GR).
EEA: frozenset[str] = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    ]
)

# Rule numbers of consent.md, in the order they are applied; 0 = passes every rule.
PASSES, SUPPRESSED, UNDER_AGE, NO_PERMISSION, NO_IDENTIFIER = 0, 1, 2, 3, 4
RULE_NAMES = {
    SUPPRESSED: "suppressed",
    UNDER_AGE: "under_age",
    NO_PERMISSION: "no_permission",
    NO_IDENTIFIER: "no_identifier",
}


@dataclass(frozen=True)
class ConsentPolicy:
    table: str
    suppression_table: str | None
    minimum_age: int
    default_basis: str
    basis: dict[str, str] = field(default_factory=dict)  # country code or "EEA" -> basis

    def basis_by_country(self) -> dict[str, str]:
        """Explicit countries win over the EEA group, which wins over the default."""
        out = {c: self.basis["EEA"] for c in EEA} if "EEA" in self.basis else {}
        out.update({c: b for c, b in self.basis.items() if c != "EEA"})
        return out


@dataclass(frozen=True)
class ExportTarget:
    name: str
    purposes: tuple[str, ...]
    identifiers: tuple[str, ...]  # identifier types: email, phone, maid, external_id
    min_size: int
    format: str
