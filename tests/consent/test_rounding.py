"""Counts shown to planners: aggregation, then two significant digits (consent.md)."""

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent_filter.funnel import shown, shown_to_planner


@pytest.mark.parametrize(("count", "display"), [
    (1373, "1400"), (2954, "3000"), (2960, "3000"), (100, "100"), (149, "150"), (150, "150"),
    (1249, "1200"), (1250, "1300"), (99_999, "100000"), (1_234_567, "1200000")])
def test_counts_at_or_above_the_threshold_are_rounded_to_two_significant_digits(count, display):
    assert shown_to_planner(count, 100) == (display, int(display), 0)


def test_counts_below_the_threshold_are_fewer_than_n():
    assert shown_to_planner(99, 100) == ("fewer than 100", 0, 100)
    assert shown_to_planner(999, 1000) == ("fewer than 1000", 0, 1000)


def test_the_command_line_keeps_exact_counts():
    assert shown(1373, 100) == ("1373", 1373, 0)


@given(st.integers(min_value=100, max_value=10**12))
def test_rounding_agrees_with_decimal_quantize(count):
    exponent = len(str(count)) - 2
    expected = int(Decimal(count).scaleb(-exponent).quantize(Decimal(1), ROUND_HALF_UP).scaleb(exponent))
    assert shown_to_planner(count, 100)[1] == expected
