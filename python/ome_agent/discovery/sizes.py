"""``modelParameterSize``: a parameter count in the short form OME writes (docs/wire.md).

Discovery (layer 3) fills it from the exact or estimated count: ``8030261248 ->
"8.03B"``; whole numbers keep no decimals (``"70B"``), one decimal when that is exact
(``"1.5B"``), otherwise two; units K, M, B, T.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

_UNITS = (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3))

# Bytes per parameter of each ``torch_dtype`` spelling. OME's
# ``decodedModelConfiguration.model_size_bytes`` is parameters x this width, with
# float32's 4 bytes for a dtype it does not know; bytes on disk are a member of ours.
_DTYPE_WIDTH = {
    "float64": 8.0,
    "double": 8.0,
    "float32": 4.0,
    "float": 4.0,
    "float16": 2.0,
    "half": 2.0,
    "bfloat16": 2.0,
    "float8_e4m3fn": 1.0,
    "float8_e5m2": 1.0,
    "fp8": 1.0,
    "int8": 1.0,
    "uint8": 1.0,
    "int4": 0.5,
}
_DEFAULT_WIDTH = 4.0


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


def ome_counts(parameters: int, dtype: str | None) -> dict[str, str | int]:
    """The members of OME's ``decodedModelConfiguration`` that a parameter count gives:
    ``parameter_count`` in the human form and ``model_size_bytes``, ``parameters`` x the
    width of ``dtype`` (float32's when unknown) — not the bytes on disk."""
    width = _DTYPE_WIDTH.get((dtype or "").lower().removeprefix("torch."), _DEFAULT_WIDTH)
    return {
        "parameter_count": format_parameter_size(parameters),
        "model_size_bytes": int(parameters * width),
    }
