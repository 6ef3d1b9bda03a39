"""Base class of the defenses: a `SelfEnsemble` whose train_step transforms the batch."""

import keras
import tensorflow as tf

from keras_rse.models.self_ensemble import SelfEnsemble


_OWN_STREAM_OFFSET = 1_000_003  # far above any network's count of noise layers


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

    # Whether `training_batch` keeps the images (labels may change): only then do the
    # batch norms' statistics recomputed on the training images (weight averaging,
    # `keras_rse.training.recompute_batch_norm_statistics`) match what training saw.
    trains_on_given_images = True

    def __init__(self, network, ensemble_size=10, seed=None, **kwargs):
        super().__init__(network, ensemble_size=ensemble_size, **kwargs)
        self.seed = seed
        # Offset from the network's seeds (its noise layers use seed, seed + 1, ...):
        # SeedGenerator(seed) starts at [seed, 0], and an equal stream would make
        # the attack starts repeat the first noise layer's draws.
        self.seed_generator = keras.random.SeedGenerator(
            None if seed is None else seed + _OWN_STREAM_OFFSET)

    def training_batch(self, x, y):
        """Returns the ``(inputs, targets)`` the update is computed on."""
        return x, y

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, y = self.training_batch(x, y)
        return self._loggable(super().train_step((x, y, sample_weight)))

    def test_step(self, data):
        return self._loggable(super().test_step(data))

    def _multi_worker(self):
        return isinstance(self._distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def _loggable(self, logs):
        # Under MultiWorkerMirroredStrategy Keras 3 reduces each per-replica log with
        # strategy.reduce("MEAN", axis=0), which rejects the scalar metric values
        # (keras-team/keras#20585); a shape-[1] value reduces to the same mean.
        if not self._multi_worker():
            return logs
        return tf.nest.map_structure(lambda v: tf.reshape(v, [1]), logs)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3 (TF backend) reduces the first distributed batch with MEAN across
        # replicas only to learn its shapes; under MultiWorkerMirroredStrategy that
        # reduction raises (keras-team/keras#20585). This worker's own batch has
        # the same shapes, so take it and skip the cross-worker reduction.
        if iterator is not None and self._multi_worker():
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: v.values[0] if isinstance(v, tf.distribute.DistributedValues)
                    else v, next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
