"""Sensitive data categories (fideslang taxonomy) and their validation.

The taxonomy comes from the `fideslang` package rather than a copied list, so category keys stay
in step with what privacy teams use elsewhere (Fides, Ethyca). A project maps warehouse objects to
categories in `[sensitive]`; every mapped object is blocked from targeting, with no per-audience
switch. The keys must exist in the taxonomy (or below a sensitive root, for project-defined
categories such as `user.inferred.emotion`), so a typo cannot silently weaken a rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

# consent.md: everything under these is sensitive by default.
DEFAULT_SENSITIVE_ROOTS: tuple[str, ...] = (
    "user.health_and_medical",
    "user.biometric",
    "user.genetic",
    "user.demographic.race_ethnicity",
    "user.demographic.religious_belief",
    "user.demographic.political_opinion",
    "user.demographic.sexual_orientation",
    "user.childrens",
    "user.criminal_history",
    "user.government_id",
    "user.financial",
    "user.location.precise",
    "user.contact.address",
    "user.inferred",
)


@lru_cache(maxsize=1)
def taxonomy_keys() -> frozenset[str]:
    """Every data-category key of fideslang's default taxonomy."""
    from fideslang.default_taxonomy import DEFAULT_TAXONOMY

    return frozenset(c.fides_key for c in DEFAULT_TAXONOMY.data_category)


def _under(key: str, roots: Iterable[str]) -> bool:
    return any(key == r or key.startswith(r + ".") for r in roots)


def is_sensitive(category: str, extra_roots: Iterable[str] = ()) -> bool:
    """True when `category` falls under a default sensitive root or a project-declared one."""
    return _under(category, (*DEFAULT_SENSITIVE_ROOTS, *extra_roots))


def category_problem(category: str, extra_roots: Iterable[str] = ()) -> str | None:
    """Why `category` is not a usable key, or None when it is known."""
    extra = tuple(extra_roots)
    if category in taxonomy_keys() or is_sensitive(category, extra):
        return None
    parent = category.rsplit(".", 1)[0] if "." in category else ""
    if parent and parent in taxonomy_keys():
        return None  # a project refinement of a known category, e.g. user.behavior.mood
    import difflib

    close = difflib.get_close_matches(category, sorted(taxonomy_keys()), n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return f'unknown data category "{category}" (not in the fideslang taxonomy){hint}'
