"""Gaussian noise with a trainable scale and offset (LeRAT, PNI-style)."""

import keras
from keras import ops

from keras_rse._validation import check_choice, check_non_negative_float
from keras_rse.layers._gaussian import standard_normal
from keras_rse.layers.random_noise import add_noise_scale


@keras.saving.register_keras_serializable(package="keras_rse")
class LearnedNoise(keras.layers.Layer):
    """Adds ``offset + scale * N(0, 1)`` with trainable ``scale >= 0``; always active.

    The noise layer of Learned Randomized Adversarial Training (LeRAT, Araujo
    et al.): the noise parameters are weights, learned by the (adversarial)
    training loss instead of chosen by grid search. As in Parametric Noise
    Injection (Rakin et al., 2018) the scale can be one value per channel or
    one per activation. ``scale`` carries a `keras.constraints.NonNeg`
    constraint, so optimizer updates keep it >= 0; the call also takes its
    absolute value, so a scale made negative by hand still gives a valid
    standard deviation.

    Note that a plain (non-adversarial) loss drives ``scale`` to 0: the RAT
    paper says LeRAT only makes sense with the adversarial loss.

    Args:
        initial_stddev: Initial value of every scale entry, a float >= 0.
        per: ``"channel"`` (one scale per channel, the last axis) or
            ``"element"`` (one per activation, input shape without batch).
        learn_offset: If True, also learn an additive offset (initialised to
            0) of the same shape as the scale.
        seed: Optional integer seed.
        **kwargs: Base layer arguments.
    """

    def __init__(self, initial_stddev=1.0, per="channel", learn_offset=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.initial_stddev = check_non_negative_float("initial_stddev", initial_stddev)
        self.per = check_choice("per", per, {"channel", "element"})
        self.learn_offset = bool(learn_offset)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        shape = (input_shape[-1],) if self.per == "channel" else tuple(input_shape[1:])
        self.scale = self.add_weight(
            name="scale",
            shape=shape,
            initializer=keras.initializers.Constant(self.initial_stddev),
            constraint=keras.constraints.NonNeg(),
        )
        self.offset = None
        if self.learn_offset:
            self.offset = self.add_weight(name="offset", shape=shape, initializer="zeros")
        self.noise_scale = add_noise_scale(self)

    def call(self, inputs):
        unit_noise = standard_normal(inputs, self.compute_dtype, self.seed_generator)
        multiplier = ops.cast(self.noise_scale, self.compute_dtype)
        outputs = inputs + multiplier * ops.abs(ops.cast(self.scale, self.compute_dtype)) * unit_noise
        if self.offset is not None:
            outputs = outputs + ops.cast(self.offset, self.compute_dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_stddev": self.initial_stddev,
                "per": self.per,
                "learn_offset": self.learn_offset,
                "seed": self.seed,
            }
        )
        return config
