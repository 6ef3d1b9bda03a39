"""Argument checks shared by the package, raising errors in the Keras form.

Every check raises ``ValueError("Invalid value for argument `name`. Expected
... Received: name=value")`` so that a user can see at once which argument was
wrong and what was passed.
"""

import math
import numbers

import numpy as np


def invalid_argument(name, expected, value):
    """Builds the package's standard error for a bad argument.

    Args:
        name: The argument's name, as the user wrote it.
        expected: What a valid value looks like ("a float >= 0").
        value: The value received.

    Returns:
        A ``ValueError`` ready to raise.
    """
    return ValueError(
        f"Invalid value for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def check_non_negative_float(name, value):
    """Returns ``value`` as a float, or raises if it is not finite and >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise invalid_argument(name, "a finite float >= 0", value)
    return float(value)


def check_positive_int(name, value):
    """Returns ``value`` as an int, or raises if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise invalid_argument(name, "an integer >= 1", value)
    return int(value)


def check_choice(name, value, choices):
    """Returns ``value`` if it is one of ``choices``, else raises."""
    if value not in choices:
        raise invalid_argument(name, f"one of {sorted(choices)}", value)
    return value


def check_pixel_values(name, values):
    """Raises unless the array ``values`` is finite and inside [0, 1] (pixel space).

    Every model and attack of the package takes images in [0, 1]; 8-bit images
    (0-255) or mean/std-normalised ones would give meaningless predictions
    without any other error, so they are refused here, naming the range found.

    Args:
        name: The argument's name, as the user wrote it.
        values: A NumPy array (any shape; an empty one passes).
    """
    values = np.asarray(values)
    if not values.size:
        return
    # min and max propagate NaN and inf: two passes check finiteness and range.
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise invalid_argument(name, "finite values", "an array containing NaN or inf")
    if low < 0 or high > 1:
        # Values up to 255 are almost always 8-bit images passed unscaled.
        hint = " (8-bit images: divide by 255)" if low >= 0 and high >= 2 else ""
        raise invalid_argument(name, f"values in [0, 1]{hint}", f"values in [{low:g}, {high:g}]")
