"""The difference check (consent.md "Singling out through counts", Ads Data Hub's rule).

Per caller (a hash of its token, or its peer when auth is off) and for 30 days, the service
remembers the set of profiles behind every count it showed at or above the threshold. A new
count whose set differs from a remembered one by at least 1 and fewer than *threshold*
profiles would let the caller subtract the two answers and learn about a small group, so it is
withheld, naming the earlier answer. The one exception: the same question (same label) whose
set moved by less than the threshold gets the earlier answer again, which tells nothing new.

Sets are roaring bitmaps of dense profile ids (the state store's ``audience_profile_ids``);
only answers whose sizes differ by less than the threshold are read back (an index on size),
since sets further apart in size cannot be too close.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from pyroaring import BitMap

from audience.runs.store import StateStore, now
from consent_filter.funnel import shown_to_planner

REMEMBERED_FOR = timedelta(days=30)


@dataclass(frozen=True)
class Shown:
    """One count as the caller sees it: display, value, fewer_than, and why it is withheld."""

    display: str
    value: int
    fewer_than: int
    withheld: str = ""


def caller_of(token: str | None, peer: str) -> str:
    """Who asks: a hash of the bearer token (never the token itself), else the peer's host."""
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()
    return "peer:" + peer.rsplit(":", 1)[0]


class AnswerMemory:
    """The sets behind each caller's earlier answers, in the state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()  # answers of one caller are checked one at a time

    def bitmap(self, keys: Iterable[object]) -> BitMap:
        texts = [str(k) for k in keys]
        missing = [k for k in texts if k not in self._ids]
        if missing:
            self._ids = self.store.profile_ids(missing)
        return BitMap(self._ids[k] for k in texts)

    def answers(self, caller: str, counts: list[tuple[str, BitMap]], threshold: int) -> list[Shown]:
        """Each (label, members) count as *caller* may see it; the ones shown are remembered.

        The counts of one answer (a funnel's steps, an overlap's cells) are checked against
        earlier answers only, not against each other: they are shown together by design.
        """
        with self._lock:
            result = [self._checked(caller, label, members, threshold) for label, members in counts]
            for (label, members), (shown, fresh) in zip(counts, result, strict=True):
                if fresh:
                    self.store.remember_answer(caller, label, len(members), str(shown.value),
                                               members.serialize())
        return [shown for shown, _ in result]

    def _checked(self, caller: str, label: str, members: BitMap, threshold: int) -> tuple[Shown, bool]:
        """(what to show, whether it is a new answer to remember)."""
        size = len(members)
        if size < threshold:
            return Shown(*shown_to_planner(size, threshold)), False
        too_close = ""
        for earlier_label, _, earlier_shown, blob in self.store.answers_near(
                caller, size, threshold, now() - REMEMBERED_FOR):
            apart = members.symmetric_difference_cardinality(BitMap.deserialize(blob))
            if apart >= threshold:
                continue
            if earlier_label == label or apart == 0:  # the same question, or the same set
                value = int(earlier_shown)
                return Shown(str(value), value, 0), False
            too_close = too_close or earlier_label
        if too_close:
            return Shown(f"withheld: too close to an earlier answer about {too_close}", 0, 0,
                         withheld=too_close), False
        return Shown(*shown_to_planner(size, threshold)), True
