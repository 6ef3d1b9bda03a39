"""Additive Gaussian noise that stays on at inference (the RSE noise layer)."""

import keras
from keras import ops

from keras_rse._validation import check_non_negative_float
from keras_rse.layers._gaussian import standard_normal


def add_noise_scale(layer):
    """Adds the scalar, non-trainable ``noise_scale`` weight (1.0) every noise layer has.

    A variable rather than a Python attribute, so compiled functions see changes
    made by `keras_rse.layers.set_noise_scale`.
    """
    return layer.add_weight(name="noise_scale", shape=(), initializer="ones",
                            trainable=False, autocast=False)


@keras.saving.register_keras_serializable(package="keras_rse")
class RandomNoise(keras.layers.Layer):
    """Adds Gaussian noise in training *and* in inference (unlike `GaussianNoise`).

    Every call draws fresh noise ``N(0, stddev^2)`` for every element of every
    example, whatever the ``training`` flag says: this is the noise layer of
    Random Self-Ensemble (Liu et al., 2018, Algorithm 1), which must stay on
    at test time so that repeated passes form an ensemble and an attacker faces
    a random function.

    The noise can be scaled (or switched off with 0) without rebuilding the
    model through the non-trainable scalar weight ``noise_scale``; see
    `keras_rse.layers.set_noise_scale`. It is a variable, not a Python
    attribute, so compiled functions that already traced the layer see the
    change.

    Args:
        stddev: Standard deviation of the noise, a float >= 0, in the units of
            the layer's input (pixel units for a noise layer on the image).
        seed: Optional integer seed; with a seed, a sequence of calls is
            repeatable.
        **kwargs: Base layer arguments (``name``, ``dtype``).

    Example:
        >>> layer = RandomNoise(0.1, seed=1)
        >>> y = layer(np.zeros((2, 4)))  # noisy even though training=None
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = check_non_negative_float("stddev", stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        self.noise_scale = add_noise_scale(self)

    def call(self, inputs):
        noise = standard_normal(inputs, self.compute_dtype, self.seed_generator)
        scale = ops.cast(self.noise_scale * self.stddev, self.compute_dtype)
        return inputs + scale * noise

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"stddev": self.stddev, "seed": self.seed})
        return config
