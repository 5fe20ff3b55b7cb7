"""Diagnostics: the one-line, machine-stable error format planners and CI annotations read.

Every problem the toolchain finds in a user's input becomes a `Diagnostic` instead of an
exception, so one pass can report every error of a file and the CLI never shows a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A source range; lines and columns are counted from 1, the end is exclusive."""

    line: int
    col: int
    end_line: int
    end_col: int

    def to(self, other: Span) -> Span:
        """The span from the start of this one to the end of `other`."""
        return Span(self.line, self.col, other.end_line, other.end_col)


NO_SPAN = Span(1, 1, 1, 1)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in one file, at one place, with a stable code (E1xx syntax ... E4xx project)."""

    file: str
    span: Span
    code: str
    message: str
    severity: str = "error"

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def col(self) -> int:
        return self.span.col

    def format(self) -> str:
        """The exact one-line form of dsl.md: `file:line:col: error[CODE]: message`."""
        return f"{self.file}:{self.span.line}:{self.span.col}: {self.severity}[{self.code}]: {self.message}"

    def render(self, source: str | None) -> str:
        """The one-line form, then the source line and a caret under the offending token."""
        head = self.format()
        if not source:
            return head
        from dsl.lexer import source_line

        text = source_line(source, self.span.line)
        if text is None:
            return head
        width = max(1, (self.span.end_col - self.span.col) if self.span.end_line == self.span.line else 1)
        caret = " " * (self.span.col - 1) + "^" * min(width, max(1, len(text) - self.span.col + 1))
        return f"{head}\n  {text}\n  {caret}"

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        span = data.pop("span")
        data.update(
            line=span["line"], column=span["col"], end_line=span["end_line"], end_column=span["end_col"]
        )
        return data


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Stable reading order: by file, then position, then code."""
    return sorted(diagnostics, key=lambda d: (d.file, d.span.line, d.span.col, d.code, d.message))


def diagnostics_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps({"diagnostics": [d.to_json() for d in diagnostics]}, indent=2)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A `; did you mean "x"?` suffix when a candidate is close enough to be a likely typo."""
    import difflib

    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f'; did you mean "{matches[0]}"?' if matches else ""
