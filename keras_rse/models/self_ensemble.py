"""The defended model: one noisy member per call, the self-ensemble in `predict`."""

import keras
import numpy as np
import tensorflow as tf

from keras_rse._validation import check_pixel_values, check_positive_int, invalid_argument
from keras_rse.layers.noise_control import noise_layers


def check_image_batch(inputs, name="inputs"):
    """Raises a clear error unless ``inputs`` is a rank-4 (N, H, W, C) batch."""
    shape = tuple(inputs.shape)
    if len(shape) != 4:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a 4D batch of images "
            f"(batch, height, width, channels) with values in [0, 1]. "
            f"Received: {name}.shape={shape}"
        )


@keras.saving.register_keras_serializable(package="keras_rse")
class SelfEnsemble(keras.Model):
    """A randomized network whose `predict` averages softmax over noise draws.

    * ``model(x)`` returns the logits of **one** random member: the noise
      layers draw fresh noise for every call and every example. Attacks and
      training use this.
    * ``model.predict(x)`` returns the **self-ensemble**: softmax probabilities
      averaged over ``ensemble_size`` draws (RSE, eq. 4 and 6). The batch is
      tiled so that one forward pass serves several draws, and the draws are
      split into passes of at most ``max_rows_per_pass`` rows to bound memory.
    * Batch normalisation runs in inference mode in `predict`.

    The plain functional network (logits, noise layers in place) is
    ``model.network``. A network without noise layers is deterministic, so its
    ensemble is computed with one pass.

    Args:
        network: A functional `keras.Model` mapping [0, 1] images to logits.
        ensemble_size: Number of noise draws averaged by `predict` (>= 1).
            Can be changed later (``model.ensemble_size = 50``); it is saved
            with the model.
        max_rows_per_pass: Upper bound on rows (draws x batch) in one forward
            pass of `predict`; lower it if memory is short.
        **kwargs: `keras.Model` arguments (``name``).

    Example:
        >>> model = keras_rse.models.vgg16()        # a SelfEnsemble
        >>> probs = model.predict(x)                # ensemble over 10 draws
        >>> logits = model(x)                       # one noisy pass
    """

    def __init__(self, network, ensemble_size=10, max_rows_per_pass=1024, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(network, keras.Model):
            raise invalid_argument("network", "a keras.Model", network)
        self.network = network
        self._ensemble_size = check_positive_int("ensemble_size", ensemble_size)
        self.max_rows_per_pass = check_positive_int("max_rows_per_pass", max_rows_per_pass)
        self.num_classes = int(network.outputs[0].shape[-1])
        self.built = True  # the wrapped network is already built

    @property
    def ensemble_size(self):
        """Number of noise draws that `predict` averages."""
        return self._ensemble_size

    @ensemble_size.setter
    def ensemble_size(self, value):
        self._ensemble_size = check_positive_int("ensemble_size", value)
        self.predict_function = None  # the compiled predict baked the old value in

    @property
    def is_randomized(self):
        """True if the network contains keras_rse noise layers."""
        return bool(noise_layers(self.network))

    def build(self, input_shape=None):
        # The wrapped network is built at construction; nothing to create.
        self.built = True

    def call(self, inputs, training=None):
        check_image_batch(inputs)
        return self.network(inputs, training=training)

    def ensemble_probabilities(self, x, ensemble_size=None):
        """Averages softmax probabilities over noise draws, draws tiled in the batch.

        Args:
            x: A batch of images (N, H, W, C) in [0, 1].
            ensemble_size: Draws to average; defaults to ``self.ensemble_size``.

        Returns:
            A float32 tensor (N, num_classes) whose rows sum to 1.
        """
        check_image_batch(x, "x")
        n = self._ensemble_size if ensemble_size is None else check_positive_int(
            "ensemble_size", ensemble_size
        )
        if not self.is_randomized:
            n = 1  # every draw would be the same
        x = tf.convert_to_tensor(x, dtype=self.network.inputs[0].dtype)
        if tf.executing_eagerly():  # traced (inside predict) there are no values to check
            check_pixel_values("x", x.numpy())
        # A static batch keeps the loop accumulator's shape fixed across iterations.
        batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
        draws_per_pass = tf.clip_by_value(self.max_rows_per_pass // tf.maximum(batch, 1), 1, n)

        def one_pass(done, total):
            draws = tf.minimum(draws_per_pass, n - done)
            tiled = tf.tile(x, [draws, 1, 1, 1])  # draw-major: row d * batch + i
            logits = tf.cast(self.network(tiled, training=False), tf.float32)
            probs = tf.reshape(tf.nn.softmax(logits), [draws, batch, self.num_classes])
            return done + draws, total + tf.reduce_sum(probs, axis=0)

        total = tf.zeros([batch, self.num_classes], tf.float32)
        _, total = tf.while_loop(
            lambda done, _: done < n, one_pass, (tf.constant(0), total)
        )
        return total / float(n)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`: the self-ensemble's probabilities, batch by batch.

        An array or eager tensor ``x`` is first checked to hold images in
        [0, 1] (a dataset or generator is passed on as it is): unscaled 8-bit
        images would otherwise give confident, meaningless probabilities.

        Returns:
            A NumPy array (N, num_classes) of averaged softmax probabilities.
        """
        if isinstance(x, np.ndarray) or (tf.is_tensor(x) and tf.executing_eagerly()):
            check_pixel_values("x", np.asarray(x))
        return super().predict(x, *args, **kwargs)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.ensemble_probabilities(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "network": keras.saving.serialize_keras_object(self.network),
                "ensemble_size": self._ensemble_size,
                "max_rows_per_pass": self.max_rows_per_pass,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        network = keras.saving.deserialize_keras_object(
            config.pop("network"), custom_objects=custom_objects
        )
        return cls(network, **config)
