"""Base class of the defenses: a `SelfEnsemble` whose train_step transforms the batch."""

import keras

from keras_rse.models.self_ensemble import SelfEnsemble


class Defense(SelfEnsemble):
    """A `SelfEnsemble` trained by a defense-specific `train_step`.

    Subclasses override `training_batch` (adversarial examples, augmentation,
    soft labels) and nothing else: the update itself is Keras' own
    `train_step`, so loss scaling, metrics and `tf.distribute` work as in any
    Keras model. This class itself is plain (noisy) SGD: with noise layers in
    the network it is RSE's Algorithm 1 (fresh noise at every step), without
    them ordinary training.

    Args:
        network: The functional network (noise layers in place).
        ensemble_size: Draws averaged by `predict`.
        seed: Seed for the defense's own randomness (attack starts, ...).
        **kwargs: `SelfEnsemble` arguments.
    """

    def __init__(self, network, ensemble_size=10, seed=None, **kwargs):
        super().__init__(network, ensemble_size=ensemble_size, **kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def training_batch(self, x, y):
        """Returns the ``(inputs, targets)`` the update is computed on."""
        return x, y

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, y = self.training_batch(x, y)
        return super().train_step((x, y, sample_weight))

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
