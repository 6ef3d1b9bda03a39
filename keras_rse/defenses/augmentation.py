"""Robust optimisation (Gaussian data augmentation, with BReLU networks) and distillation."""

import functools

import keras
import tensorflow as tf

from keras_rse._validation import check_non_negative_float, invalid_argument
from keras_rse.defenses.base import Defense


class GaussianAugmentation(Defense):
    """Trains on ``clip(x + N(0, stddev^2), 0, 1)`` (Zantedeschi et al.'s robust optimisation).

    The RSE paper's "Robust Opt. + BReLU" baseline pairs it with BReLU
    activations (build the network with ``activation="brelu"``) and
    ``stddev = 0.05``. Unlike RSE, the noise is on the data and only at
    training time.
    """

    trains_on_given_images = False  # noisy ones

    def __init__(self, network, stddev=0.05, **kwargs):
        super().__init__(network, **kwargs)
        self.stddev = check_non_negative_float("stddev", stddev)

    def training_batch(self, x, y):
        x = tf.cast(x, tf.float32)
        noise = keras.random.normal(tf.shape(x), stddev=self.stddev, seed=self.seed_generator)
        return tf.clip_by_value(x + noise, 0.0, 1.0), y

    def get_config(self):
        config = super().get_config()
        config["stddev"] = self.stddev
        return config


class Distillation(Defense):
    """Defensive distillation (Papernot et al., 2016) at temperature T.

    Training divides the logits by ``temperature``. Without a teacher this
    trains the teacher on hard labels; with ``teacher`` (a trained network)
    the targets become the teacher's softmax at the same temperature, and the
    model must be compiled with a categorical (soft-label) loss. Inference
    uses the logits unscaled (T = 1), as in the paper. RSE Table 1: T = 40.
    The teacher is not saved with the model.
    """

    def __init__(self, network, temperature=40.0, teacher=None, **kwargs):
        super().__init__(network, **kwargs)
        self.temperature = check_non_negative_float("temperature", temperature)
        if self.temperature == 0:
            raise invalid_argument("temperature", "a float > 0", temperature)
        # A partial is not tracked by Keras: the teacher's weights stay out of saves.
        self._teacher_logits = None if teacher is None else functools.partial(
            teacher, training=False)

    def training_batch(self, x, y):
        if self._teacher_logits is None:
            return x, y
        soft = tf.nn.softmax(tf.cast(self._teacher_logits(x), tf.float32) / self.temperature)
        return x, tf.stop_gradient(soft)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self._teacher_logits is not None and y.dtype.is_integer:
            # The student is compiled with a soft-label loss: compare with one-hot labels.
            y = tf.one_hot(tf.cast(y, tf.int32), self.num_classes)
        return super().test_step((x, y, sample_weight))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if training:
            y_pred = y_pred / tf.cast(self.temperature, y_pred.dtype)
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config
