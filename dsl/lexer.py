"""Tokenizer for `.aud` files.

Hand-written rather than generated so that every token carries an exact line/column span and
so that a bad character becomes a diagnostic while lexing continues (all errors in one pass).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from dsl.diagnostics import Span


class Kind(Enum):
    NAME = "name"
    KEYWORD = "keyword"
    STRING = "string"
    NUMBER = "number"
    OP = "operator"
    PUNCT = "punctuation"
    EOF = "end of file"


# Reserved in conditions and block structure; names may never be one of these.
KEYWORDS = frozenset(
    [
        "audience", "where", "sync", "and", "or", "not", "in", "is", "null", "between", "contains",
        "starts", "with", "did", "at", "least", "most", "exactly", "times", "last", "since", "before",
        "sum", "avg", "min", "max", "count", "distinct", "top", "by", "then", "within", "true", "false",
        "profile", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks",
    ]
)

OPERATORS = ("!=", "<=", ">=", "=", "<", ">")
PUNCTUATION = frozenset("(){}[],:.%-")

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
# The one line break of the language: lines and columns of diagnostics, the source line shown
# under them and each audience's source text all count lines by it (U+2028, form feed, \r are
# whitespace inside a line, although str.splitlines would break there).
LINE_BREAK = "\n"
BOM = "\ufeff"  # a UTF-8 byte order mark at the start of a file is skipped, not a character


def line_starts(source: str) -> list[int]:
    """Offset of the first character of each line (line 1 starts after a BOM)."""
    starts = [1 if source.startswith(BOM) else 0]
    pos = source.find(LINE_BREAK)
    while pos >= 0:
        starts.append(pos + 1)
        pos = source.find(LINE_BREAK, pos + 1)
    return starts


def source_line(source: str, line: int) -> str | None:
    """The text of one line as the lexer counts it, without its break (and a trailing \r)."""
    starts = line_starts(source)
    if not 1 <= line <= len(starts):
        return None
    end = source.find(LINE_BREAK, starts[line - 1])
    text = source[starts[line - 1] : end if end >= 0 else len(source)]
    return text[:-1] if text.endswith("\r") else text


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # the source text (for strings: the decoded value)
    span: Span

    def is_(self, kind: Kind, text: str | None = None) -> bool:
        return self.kind is kind and (text is None or self.text == text)

    def describe(self) -> str:
        if self.kind is Kind.EOF:
            return "end of file"
        if self.kind is Kind.STRING:
            return "a string"
        return f'"{self.text}"'


@dataclass(frozen=True, slots=True)
class LexError:
    span: Span
    code: str
    message: str


def tokenize(source: str) -> tuple[list[Token], list[LexError]]:
    """Split source into tokens; comments and whitespace (including newlines) are dropped."""
    lexer = _Lexer(source)
    lexer.run()
    return lexer.tokens, lexer.errors


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 1 if source.startswith(BOM) else 0
        self.line = 1
        self.col = 1
        self.tokens: list[Token] = []
        self.errors: list[LexError] = []

    def run(self) -> None:
        while self.pos < len(self.src):
            ch = self.src[self.pos]
            if ch == LINE_BREAK or ch.isspace():
                self._advance(1)
            elif ch == "#":
                end = self.src.find(LINE_BREAK, self.pos)
                self._advance((len(self.src) if end < 0 else end) - self.pos)
            elif ch == '"':
                self._string()
            elif "0" <= ch <= "9":  # ASCII only: "²".isdigit() is true too
                self._match(_NUMBER, Kind.NUMBER)
            elif ch.isascii() and (ch.isalpha() or ch == "_"):
                self._word()
            elif self.src.startswith(OPERATORS, self.pos):
                op = next(o for o in OPERATORS if self.src.startswith(o, self.pos))
                self._emit(Kind.OP, op, len(op))
            elif ch in PUNCTUATION:
                self._emit(Kind.PUNCT, ch, 1)
            else:
                start = self._here()
                self._advance(1)
                self.errors.append(
                    LexError(self._span_from(start), "E101", f"unexpected character {ch!r}")
                )
        self.tokens.append(Token(Kind.EOF, "", Span(self.line, self.col, self.line, self.col)))

    def _here(self) -> tuple[int, int]:
        return self.line, self.col

    def _span_from(self, start: tuple[int, int]) -> Span:
        return Span(start[0], start[1], self.line, self.col)

    def _advance(self, n: int) -> None:
        chunk = self.src[self.pos : self.pos + n]
        breaks = chunk.count(LINE_BREAK)
        if breaks:
            self.line += breaks
            self.col = n - chunk.rfind(LINE_BREAK)
        else:
            self.col += n
        self.pos += n

    def _emit(self, kind: Kind, text: str, length: int) -> None:
        start = self._here()
        self._advance(length)
        self.tokens.append(Token(kind, text, self._span_from(start)))

    def _match(self, pattern: re.Pattern[str], kind: Kind) -> None:
        m = pattern.match(self.src, self.pos)
        assert m is not None
        self._emit(kind, m.group(0), len(m.group(0)))

    def _word(self) -> None:
        m = _WORD.match(self.src, self.pos)
        assert m is not None
        word = m.group(0)
        start = self._here()
        self._advance(len(word))
        span = self._span_from(start)
        if word in KEYWORDS:
            self.tokens.append(Token(Kind.KEYWORD, word, span))
            return
        if not _NAME.match(word):
            hint = f'; names are lowercase, e.g. "{word.lower()}"'
            self.errors.append(LexError(span, "E105", f'invalid name "{word}"{hint}'))
        self.tokens.append(Token(Kind.NAME, word, span))

    def _string(self) -> None:
        start = self._here()
        self._advance(1)
        chars: list[str] = []
        while self.pos < len(self.src):
            ch = self.src[self.pos]
            if ch == '"':
                self._advance(1)
                self.tokens.append(Token(Kind.STRING, "".join(chars), self._span_from(start)))
                return
            if ch == LINE_BREAK:
                break
            if ch == "\x00":  # warehouses end query text at NUL (PostgreSQL) or reject it
                here = Span(self.line, self.col, self.line, self.col + 1)
                self.errors.append(LexError(here, "E102", "a string may not contain the NUL character"))
                self._advance(1)
                continue
            if ch == "\\" and self.pos + 1 < len(self.src) and self.src[self.pos + 1] in _ESCAPES:
                chars.append(_ESCAPES[self.src[self.pos + 1]])
                self._advance(2)
                continue
            chars.append(ch)
            self._advance(1)
        span = self._span_from(start)
        self.errors.append(LexError(span, "E102", "unterminated string (a string ends with \" on the same line)"))
        self.tokens.append(Token(Kind.STRING, "".join(chars), span))
