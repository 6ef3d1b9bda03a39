"""Pieces shared by the builders: noise placement, normalisation, activations."""

import keras

from keras_rse._validation import check_choice, check_non_negative_float, invalid_argument
from keras_rse.layers import BReLU, LearnedNoise, RandomNoise

# Per-channel statistics of the CIFAR-10 training set in [0, 1] pixel units.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

NOISE_TYPES = {"gaussian", "learned"}
NORMALIZATIONS = {"cifar10", "symmetric", "none"}
ACTIVATIONS = {"relu", "brelu"}


class NoisePlan:
    """Creates the noise layers of one model: ``init_noise`` first, then inner ones.

    A plan hands out layers named ``init_noise`` and ``inner_noise_1``,
    ``inner_noise_2``, ... so that `keras_rse.layers.set_noise_scale` can
    address them by pattern. With a seed, each layer gets its own derived seed
    (``seed + index``): one seed for all would correlate their draws.

    Args:
        init_noise: Standard deviation before the first conv (pixel units).
        inner_noise: Standard deviation before every other conv.
        noise_type: ``"gaussian"`` (`RandomNoise`, RSE) or ``"learned"``
            (`LearnedNoise`, LeRAT; the values are the initial scales).
        seed: Optional integer seed.
    """

    def __init__(self, init_noise, inner_noise, noise_type="gaussian", seed=None):
        self.init_noise = check_non_negative_float("init_noise", init_noise)
        self.inner_noise = check_non_negative_float("inner_noise", inner_noise)
        self.noise_type = check_choice("noise_type", noise_type, NOISE_TYPES)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise invalid_argument("seed", "None or an integer", seed)
        self.seed = seed
        self._created = 0
        self._inner_created = 0

    def _layer(self, stddev, name):
        if self.noise_type == "gaussian" and stddev == 0:
            return None  # no randomness requested: keep the network deterministic
        seed = None if self.seed is None else self.seed + self._created
        self._created += 1
        if self.noise_type == "learned":
            return LearnedNoise(initial_stddev=stddev, seed=seed, name=name)
        return RandomNoise(stddev, seed=seed, name=name)

    def apply(self, x, first=False):
        """Applies the next noise layer to tensor ``x`` (or returns ``x``)."""
        if first:
            layer = self._layer(self.init_noise, "init_noise")
        else:
            layer = self._layer(self.inner_noise, f"inner_noise_{self._inner_created + 1}")
            self._inner_created += layer is not None
        return x if layer is None else layer(x)


def normalization_layer(normalization):
    """Returns the layer that maps [0, 1] pixels to the network's input scale.

    Args:
        normalization: ``"cifar10"`` (per-channel mean/std of CIFAR-10),
            ``"symmetric"`` (to [-1, 1], as RAT) or ``"none"``.

    Returns:
        A Keras layer, or None for ``"none"``.
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    if normalization == "cifar10":
        return keras.layers.Normalization(
            mean=CIFAR10_MEAN, variance=[s * s for s in CIFAR10_STD], name="normalize"
        )
    if normalization == "symmetric":
        return keras.layers.Rescaling(2.0, offset=-1.0, name="normalize")
    return None


def activation_layer(activation, name):
    """Returns a ReLU or a bounded ReLU (`BReLU`, for the Robust-Opt baseline)."""
    check_choice("activation", activation, ACTIVATIONS)
    if activation == "brelu":
        return BReLU(name=name)
    return keras.layers.ReLU(name=name)


def image_input(input_shape, normalization, noise_plan):
    """Creates the model input, the pixel-space init noise and the normalisation.

    The init noise is added to the [0, 1] image *before* normalisation, so its
    standard deviation is in pixel units whatever the normalisation (RSE
    chose sigma_init = 0.2 "if the input image is normalized to [0, 1]").

    Returns:
        ``(inputs, x)``: the `keras.Input` and the tensor fed to the first conv.
    """
    if len(tuple(input_shape)) != 3:
        raise invalid_argument("input_shape", "(height, width, channels)", input_shape)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = noise_plan.apply(inputs, first=True)
    norm = normalization_layer(normalization)
    if norm is not None:
        x = norm(x)
    return inputs, x


def batch_norm(name, **kwargs):
    """Batch norm with PyTorch's defaults (momentum 0.1 there = 0.9 here, eps 1e-5).

    The reference implementations of both papers' models are PyTorch/TF1 code
    using these values; Keras' default momentum (0.99) also leaves the moving
    statistics far from the data after a few hundred steps, which makes
    short runs look broken in inference mode.
    """
    kwargs.setdefault("momentum", 0.9)
    kwargs.setdefault("epsilon", 1e-5)
    return keras.layers.BatchNormalization(name=name, **kwargs)


def plain_conv_stack(x, layout, plan, activation, width_multiplier=1.0, **batch_norm_kwargs):
    """VGG-style stack: for each conv, (noise) -> conv3x3 -> batch norm -> activation.

    Args:
        x: Tensor fed to the first conv (its init noise is already applied).
        layout: Items ``filters`` (same padding), ``(filters, padding)`` or
            ``"M"`` (2x2 max pooling).
        plan: The `NoisePlan`; every conv after the first gets inner noise.
        activation: ``"relu"`` or ``"brelu"``.
        width_multiplier: Scales every conv's filters.
        **batch_norm_kwargs: Passed to `batch_norm` (``center=False, ...``).

    Returns:
        The output tensor.
    """
    conv_index, pool_index = 0, 0
    for item in layout:
        if item == "M":
            pool_index += 1
            x = keras.layers.MaxPooling2D(2, name=f"pool{pool_index}")(x)
            continue
        filters, padding = item if isinstance(item, tuple) else (item, "same")
        conv_index += 1
        if conv_index > 1:
            x = plan.apply(x)
        filters = max(1, int(round(filters * width_multiplier)))
        x = keras.layers.Conv2D(filters, 3, padding=padding, name=f"conv{conv_index}")(x)
        x = batch_norm(f"bn{conv_index}", **batch_norm_kwargs)(x)
        x = activation_layer(activation, f"act{conv_index}")(x)
    return x


def flatten_head_model(inputs, x, num_classes, name, ensemble_size):
    """Flatten -> dense logits, wrapped as a `SelfEnsemble` (VGG and Model A heads)."""
    from keras_rse.models.self_ensemble import SelfEnsemble

    x = keras.layers.Flatten(name="flatten")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    network = keras.Model(inputs, logits, name=f"{name}_network")
    return SelfEnsemble(network, ensemble_size=ensemble_size, name=name)


def classifier_head(x, num_classes, name="logits"):
    """Global average pooling and a dense layer giving logits (no softmax)."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.layers.Dense(num_classes, name=name)(x)


def check_num_classes(num_classes):
    """Validates ``num_classes`` (an integer >= 2)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise invalid_argument("num_classes", "an integer >= 2", num_classes)
    return num_classes
