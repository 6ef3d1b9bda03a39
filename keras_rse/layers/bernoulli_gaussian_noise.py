"""Bernoulli-Gaussian noise, the alternative noise law of RSE section 3.1."""

import keras
from keras import ops

from keras_rse._validation import check_non_negative_float, invalid_argument
from keras_rse.layers._gaussian import standard_normal
from keras_rse.layers.random_noise import add_noise_scale


@keras.saving.register_keras_serializable(package="keras_rse")
class BernoulliGaussianNoise(keras.layers.Layer):
    """Adds Bernoulli-Gaussian noise in training and in inference.

    Each element receives ``b * e`` with ``e ~ N(0, stddev^2)`` and
    ``b ~ Bernoulli(rate)`` drawn independently (RSE, section 3.1:
    ``eps_i = b_i e_i``). With ``rate=1`` it is `RandomNoise`. Always active,
    scalable through the ``noise_scale`` weight like `RandomNoise`.

    Args:
        stddev: Standard deviation of the Gaussian part, a float >= 0.
        rate: Probability that an element is perturbed, in [0, 1].
        seed: Optional integer seed.
        **kwargs: Base layer arguments.
    """

    def __init__(self, stddev, rate=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = check_non_negative_float("stddev", stddev)
        rate = check_non_negative_float("rate", rate)
        if rate > 1:
            raise invalid_argument("rate", "a float in [0, 1]", rate)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.noise_scale = add_noise_scale(self)

    def call(self, inputs):
        shape = ops.shape(inputs)
        gaussian = self.stddev * standard_normal(inputs, self.compute_dtype,
                                                 self.seed_generator)
        uniform = keras.random.uniform(
            shape, dtype=self.compute_dtype, seed=self.seed_generator
        )
        mask = ops.cast(uniform < self.rate, self.compute_dtype)
        scale = ops.cast(self.noise_scale, self.compute_dtype)
        return inputs + scale * mask * gaussian

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"stddev": self.stddev, "rate": self.rate, "seed": self.seed})
        return config
