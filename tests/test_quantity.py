"""Kubernetes quantities: our exact parser against the official client's parser."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from kubernetes.utils import parse_quantity as reference_parse

from ome_agent.reconcile.quantity import compare_numeric, parse_quantity

VALID = [
    "0",
    "12",
    "-1",
    "+7",
    "500Gi",
    "200Gi",
    "1Ki",
    "3Mi",
    "1.5Ti",
    "2Pi",
    "1.5Ei",
    ".5Mi",
    "1.",
    "1.5T",
    "7k",
    "3M",
    "4G",
    "2P",
    "1E",
    "100m",
    "3u",
    "0.1n",
    "2e3",
    "2E3",
    "1e-3",
    "1e+3",
    "1.25e2",
    "123456789012345678901234567890",
    "0.000000000000000000000000000001Ei",
]

INVALID = ["", "abc", "Ki", "1e", "5gi", "1.2.3", "1KiB", "--1", "0x10", "e3"]
# the Python client lets these through; Kubernetes itself (Go) rejects them, and so do we
INVALID_IN_GO_ONLY = ["1 Gi", "\u0661\u0662"]


@pytest.mark.parametrize("text", VALID)
def test_agrees_with_the_kubernetes_client(text: str) -> None:
    assert parse_quantity(text) == Decimal(reference_parse(text))


@pytest.mark.parametrize("text", INVALID)
def test_rejects_what_kubernetes_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(text)
    with pytest.raises(ValueError, match="Invalid number format"):
        reference_parse(text)


@pytest.mark.parametrize("text", INVALID_IN_GO_ONLY)
def test_stricter_than_the_python_client(text: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(text)


def test_exact_without_rounding() -> None:
    assert parse_quantity("0.5Gi") == parse_quantity("512Mi")
    assert parse_quantity("1Ki") == 1024
    # 29 significant digits times 1024^6: a float or the default 28-digit context would round
    assert Fraction(parse_quantity("1234567890.1234567890123456789Ei")) == Fraction(
        "1234567890.1234567890123456789"
    ) * (2**60)


def test_huge_exponent_is_refused_not_computed() -> None:
    with pytest.raises(ValueError, match="exponent out of range"):
        parse_quantity("1e99999999")


def test_overlong_text_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity("9" * 500)


@pytest.mark.parametrize(
    ("label", "bound", "expected"),
    [
        ("500Gi", "200Gi", 1),
        ("100Gi", "200Gi", -1),
        ("200Gi", "200Gi", 0),
        ("1Ti", "1000Gi", 1),
        ("1T", "1Ti", -1),
        ("1024", "1Ki", 0),
        ("8", "4", 1),
        ("-3", "2", -1),
        ("2e3", "1999", 1),
        ("abc", "200Gi", None),
        ("500Gi", "lots", None),
        ("", "1", None),
    ],
)
def test_compare_numeric(label: str, bound: str, expected: int | None) -> None:
    assert compare_numeric(label, bound) == expected
