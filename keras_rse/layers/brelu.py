"""Bounded ReLU, the activation of the Robust-Opt + BReLU baseline."""

import keras

from keras_rse._validation import check_non_negative_float, invalid_argument


@keras.saving.register_keras_serializable(package="keras_rse")
class BReLU(keras.layers.ReLU):
    """Bounded ReLU: ``min(max(x, 0), max_value)``.

    The activation of Zantedeschi et al. (2017), "Efficient defenses against
    adversarial attacks", used with Gaussian data augmentation as the
    "Robust Opt. + BReLU" baseline of the RSE paper. A `keras.layers.ReLU`
    whose bound is required and positive.

    Args:
        max_value: The upper bound ``t``, a float > 0 (default 1.0).
        **kwargs: Base layer arguments.
    """

    def __init__(self, max_value=1.0, **kwargs):
        kwargs.pop("negative_slope", None)
        kwargs.pop("threshold", None)
        max_value = check_non_negative_float("max_value", max_value)
        if max_value == 0:
            raise invalid_argument("max_value", "a finite float > 0", max_value)
        super().__init__(max_value=max_value, **kwargs)
