"""Kubernetes quantities as exact numbers (reconcile core, docs/architecture.md, layer 4).

Node eligibility compares node labels such as ``models.ome.io/available-storage=500Gi``
against ``Gt``/``Lt`` bounds (docs/architecture.md, "Field names": Kubernetes compares
integers only; we also accept quantities). This module turns a quantity string into a
:class:`~decimal.Decimal` without rounding, so ``1Ki`` equals ``1024`` and ``0.5Gi``
equals ``512Mi`` exactly.
Pure: no I/O.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}  # powers of 1024
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# <sign><digits>[.<digits>]<suffix>, suffix = binary SI | e<signed int> | decimal SI.
# The exponent form is tried before the bare "E" (exa) so "2E3" is 2000, not an error.
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))"
    r"(?:(?P<binary>[KMGTPE]i)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))"
)

# Bounds the work a hostile label can cause: Kubernetes itself rejects quantities
# beyond about 2^63 scaled by 10^-9, so nothing real comes near these.
_MAX_EXPONENT = 1000
_MAX_LENGTH = 100


def parse_quantity(text: str) -> Decimal:
    """``"500Gi"`` → ``Decimal(536870912000)``; ``"100m"`` → ``Decimal("0.1")``.

    Accepts what Kubernetes accepts: an optionally signed decimal number followed by a
    binary suffix (Ki..Ei), a decimal suffix (n, u, m, k, M, G, T, P, E) or an exponent
    (``e3``, ``E-2``). Raises :class:`ValueError` naming the text otherwise.
    """
    stripped = text.strip()
    match = _QUANTITY.fullmatch(stripped) if len(stripped) <= _MAX_LENGTH else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a Kubernetes quantity: write a number with an optional "
            "suffix such as 500Gi, 1.5T, 100m or 2e3"
        )
    number = Decimal(match["number"])
    # exact arithmetic: enough digits for the mantissa times 1024^6 (19 digits)
    exact = decimal.Context(prec=len(stripped) + 24, traps=[decimal.Inexact, decimal.Overflow])
    with decimal.localcontext(exact):
        if match["binary"]:
            return number * Decimal(1024 ** _BINARY[match["binary"]])
        if match["exponent"] is not None:
            exponent = int(match["exponent"])
            if abs(exponent) > _MAX_EXPONENT:
                raise ValueError(f"{text!r}: exponent out of range (at most ±{_MAX_EXPONENT})")
            return number.scaleb(exponent)
        return number.scaleb(_DECIMAL[match["decimal"]])


def compare_numeric(label_value: str, bound: str) -> int | None:
    """-1, 0 or 1 as ``label_value`` is below, equal to or above ``bound``; ``None``
    when either is not a number or quantity (a ``Gt``/``Lt`` that cannot compare never
    matches)."""
    try:
        left = parse_quantity(label_value)
        right = parse_quantity(bound)
    except ValueError:
        return None
    return (left > right) - (left < right)
