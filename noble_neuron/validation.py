"""The one rule for "is this a number" in argument checks: bools are not numbers, numpy scalars are."""
from __future__ import annotations

import numpy as np

__all__ = ["is_int", "is_real"]


def is_int(value) -> bool:
    """True for Python and numpy integers, False for bools (True is not a count of 1)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """True for Python and numpy integers and floats (finite or not), False for bools."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
