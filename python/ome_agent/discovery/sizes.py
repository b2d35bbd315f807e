"""``modelParameterSize``: a parameter count in the short form OME writes (DESIGN.md §2).

Discovery (layer 3) fills it from the exact or estimated count: ``8030261248 ->
"8.03B"``; whole numbers keep no decimals (``"70B"``), one decimal when that is exact
(``"1.5B"``), otherwise two; units K, M, B, T.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

_UNITS = (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3))


def format_parameter_size(n: int) -> str:
    """Short form of a parameter count: ``70_553_706_496 -> "70.55B"``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"parameter count must be a non-negative integer, got {n!r}")
    for index, (unit, scale) in enumerate(_UNITS):
        if n < scale:
            continue
        value = (Decimal(n) / scale).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if value >= 1000 and index > 0:
            # 999.996M rounds to 1000M: say 1B
            unit, scale = _UNITS[index - 1]
            value = (Decimal(n) / scale).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return _trim(value) + unit
    return str(n)


def _trim(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    one = value.quantize(Decimal("0.1"))
    if one == value:
        return f"{one:.1f}"
    return f"{value:.2f}"
