"""Version ordering for OTA: numeric parts compared as numbers (the seed compared floats)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from system.edge.versions import InvalidVersionError, Version, is_newer


@pytest.mark.parametrize(
    ("newer", "older"),
    [("1.10", "1.9"), ("1.9", "1.2.3"), ("1.2.3", "1"), ("2", "1.5"), ("10", "9"), ("1.0.1", "1"), (3, "2")],
)
def test_newer_versions_compare_as_numbers(newer: object, older: object) -> None:
    assert is_newer(newer, older)
    assert not is_newer(older, newer)


@pytest.mark.parametrize(("a", "b"), [("1", "1.0"), ("1.0.0", "1"), ("01", "1"), ("2", 2)])
def test_equal_versions_are_not_newer(a: object, b: object) -> None:
    assert Version.parse(a) == Version.parse(b)
    assert not is_newer(a, b) and not is_newer(b, a)


@pytest.mark.parametrize("text", ["", "v2", "1.", ".1", "1..2", "1.2-rc1", "-1", "1e3", " ", "1,2", None, 1.5, True])
def test_unparsable_versions_are_refused_with_a_reason(text: object) -> None:
    with pytest.raises(InvalidVersionError, match="model version"):
        Version.parse(text)


parts = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=5)


def _numeric_key(values: list[int]) -> tuple[int, ...]:
    """An independent reference: pad with zeros to a common length, compare element-wise."""
    return tuple(values) + (0,) * (5 - len(values))


@given(parts, parts)
def test_the_order_agrees_with_comparing_the_parts_as_numbers(a: list[int], b: list[int]) -> None:
    va, vb = Version.parse(".".join(map(str, a))), Version.parse(".".join(map(str, b)))
    assert (va < vb) == (_numeric_key(a) < _numeric_key(b))
    assert (va == vb) == (_numeric_key(a) == _numeric_key(b))


@given(parts, parts, parts)
def test_the_order_is_total_and_transitive(a: list[int], b: list[int], c: list[int]) -> None:
    va, vb, vc = (Version.parse(".".join(map(str, p))) for p in (a, b, c))
    assert (va < vb) + (va == vb) + (va > vb) == 1
    if va <= vb <= vc:
        assert va <= vc
