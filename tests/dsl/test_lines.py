"""Line counting agrees everywhere: lexer spans, the source line under a diagnostic, each
audience's source text; a UTF-8 BOM is accepted; parsing stays linear in the file size."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dsl.parser import parse

BLOCK_A = 'audience a {\n  where: city = "London"\n}\n'
BLOCK_B = 'audience b {\n  where: country = "GB"\n}\n'


@pytest.mark.parametrize("odd", ["\u2028", "\x0c", "\x0b", "\x1c", "\x85", "\u2029", "\r"])
def test_odd_whitespace_is_not_a_line_break_anywhere(odd: str) -> None:
    source = f"# one{odd}two\n" + BLOCK_A + f"audience b {{ where: cit{odd}y = 1 }}\n"
    result = parse(source, "x.aud")
    [diag] = [d for d in result.diagnostics if d.code != "E101"] or result.diagnostics
    # the lexer counts only \n: the block b is on line 5 (comment, 3 lines of a, then b)
    assert diag.span.line == 5
    shown = diag.render(source).split("\n")
    assert shown[1] == f"  audience b {{ where: cit{odd}y = 1 }}"
    assert [a.source_text for a in result.audiences] == [BLOCK_A.rstrip("\n")]


def test_source_text_of_each_audience_after_line_separators() -> None:
    source = "# a\u2028b\x0cc\n" + BLOCK_A + "\u2028\x0c" + BLOCK_B
    result = parse(source, "x.aud")
    assert result.diagnostics == []
    assert [a.source_text for a in result.audiences] == [BLOCK_A.rstrip("\n"), BLOCK_B.rstrip("\n")]


def test_crlf_source_text_and_shown_line() -> None:
    source = BLOCK_A.replace("\n", "\r\n") + 'audience c {\r\n  where: cty = "x"\r\n}\r\n'
    result = parse(source, "x.aud")
    assert result.audiences[0].source_text == 'audience a {\r\n  where: city = "London"\r\n}'
    assert [a.name for a in result.audiences] == ["a", "c"]


def test_bom_at_file_start_is_accepted() -> None:
    source = "\ufeff" + BLOCK_A
    result = parse(source, "x.aud")
    assert result.diagnostics == []
    assert result.audiences[0].source_text == BLOCK_A.rstrip("\n")
    assert result.audiences[0].name_span.col == 10


def test_bom_keeps_columns_of_line_one() -> None:
    source = "\ufeffaudience A { where: x = 1 }\n"
    result = parse(source, "x.aud")
    diag = next(d for d in result.diagnostics if d.code == "E105")
    assert (diag.span.line, diag.span.col) == (1, 10)
    assert diag.render(source).split("\n")[1:] == ["  audience A { where: x = 1 }", "           ^"]


def test_a_50_mb_file_parses_in_a_subprocess() -> None:
    code = textwrap.dedent('''
        from dsl.parser import parse
        block = 'audience a_{n} {{\\n  where: city = "London" and did stream in last 30 days\\n}}\\n'
        source = "".join(block.format(n=i) for i in range(700_000))
        assert len(source) > 50_000_000, len(source)
        result = parse(source, "big.aud")
        assert len(result.audiences) == 700_000 and not result.diagnostics
        assert result.audiences[-1].source_text == block.format(n=699_999).rstrip("\\n")
        print("ok")
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
