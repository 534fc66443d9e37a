"""Parameter checks shared by every detector: one message shape, naming the parameter and the range."""

from __future__ import annotations

import math


def check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, integer: bool = False) -> None:
    """Raise ``ValueError`` unless ``low <= value <= high`` (``low < value`` when ``low_open``).

    >>> check_range("window", 0, 10, integer=True)
    Traceback (most recent call last):
    ...
    ValueError: window must be an integer >= 10, got 0
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer and not float(value).is_integer():
        ok = False
    if ok and not math.isfinite(value):
        ok = False
    if ok and low is not None and (value <= low if low_open else value < low):
        ok = False
    if ok and high is not None and value > high:
        ok = False
    if not ok:  # the message is made only when it is needed (fits check their settings often)
        kind = "an integer" if integer else "a number"
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"<= {high:g}")
        allowed = f"{kind} {' and '.join(bounds)}".strip()
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
