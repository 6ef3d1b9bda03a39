"""Wide ResNets (Zagoruyko & Komodakis) with RSE or RAT noise placement."""

import keras

from keras_rse._validation import check_choice, check_non_negative_float, check_positive_int
from keras_rse._validation import invalid_argument
from keras_rse.models import _blocks
from keras_rse.models._registry import register_model
from keras_rse.models.self_ensemble import SelfEnsemble

PLACEMENTS = {"rse", "rat"}


def _conv(x, filters, kernel_size, strides, name):
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=name
    )(x)


def _wide_block(x, plan, filters, strides, dropout_rate, activation, noisy, name):
    """Pre-activation block: BN-act-(noise)-conv3x3-BN-act-dropout-(noise)-conv3x3."""
    noise = plan.apply if noisy else (lambda t: t)
    pre = _blocks.batch_norm(f"{name}_bn1")(x)
    pre = _blocks.activation_layer(activation, f"{name}_act1")(pre)
    shortcut = x
    if x.shape[-1] != filters or strides != 1:
        shortcut = _conv(noise(pre), filters, 1, strides, f"{name}_proj")
    y = _conv(noise(pre), filters, 3, strides, f"{name}_conv1")
    y = _blocks.batch_norm(f"{name}_bn2")(y)
    y = _blocks.activation_layer(activation, f"{name}_act2")(y)
    if dropout_rate > 0:
        y = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout")(y)
    y = _conv(noise(y), filters, 3, 1, f"{name}_conv2")
    return keras.layers.Add(name=f"{name}_add")([shortcut, y])


def wide_resnet(
    depth: int = 28,
    width: int = 10,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    noise_placement: str = "rse",
    init_noise: float = 0.2,
    inner_noise: float = 0.1,
    noise_type: str = "gaussian",
    dropout_rate: float = 0.0,
    activation: str = "relu",
    normalization: str = "cifar10",
    ensemble_size: int = 10,
    seed: int | None = None,
    name: str | None = None,
) -> SelfEnsemble:
    """Builds WRN-depth-width with noise placed the RSE way or the RAT way.

    ``depth = 6 n + 4``: a 3x3 stem of 16 filters, three groups of ``n``
    pre-activation basic blocks of ``16k, 32k, 64k`` filters (``k = width``),
    then BN-ReLU, global pooling and a dense layer. WRN-28-10 has 36.5 M
    parameters for 10 classes.

    Noise placement:
      * ``"rse"``: ``init_noise`` on the image, ``inner_noise`` before every
        other conv (1x1 shortcut projections included).
      * ``"rat"``: one noise layer of stddev ``init_noise`` on the output of
        the first conv ("the first layer's activation", RAT Definition 2);
        ``inner_noise`` must then be 0. RAT used N(0, 1) there, with inputs in
        [-1, 1] (``normalization="symmetric"``).

    Args:
        depth: Total depth, ``6 n + 4`` (28, 16, 10, ...).
        width: Widening factor k.
        num_classes: Number of classes.
        input_shape: ``(height, width, channels)``.
        noise_placement: ``"rse"`` or ``"rat"``.
        init_noise: See above.
        inner_noise: See above.
        noise_type: ``"gaussian"``, or ``"learned"`` for LeRAT.
        dropout_rate: Dropout between the two convs of a block (RAT used
            dropout; its rate is not given in the paper).
        activation: ``"relu"`` or ``"brelu"``.
        normalization: ``"cifar10"``, ``"symmetric"`` or ``"none"``.
        ensemble_size: Draws averaged by `predict`.
        seed: Optional integer seed for the noise layers.
        name: Model name; defaults to ``wide_resnet{depth}_{width}``.

    Returns:
        A `SelfEnsemble`.

    Reference:
        Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016; Araujo et
        al., "Robust Neural Networks using Randomized Adversarial Training".
    """
    depth = check_positive_int("depth", depth)
    if depth < 10 or (depth - 4) % 6:
        raise invalid_argument("depth", "6 n + 4 with n >= 1 (10, 16, 22, 28, ...)", depth)
    width = check_positive_int("width", width)
    _blocks.check_num_classes(num_classes)
    check_choice("noise_placement", noise_placement, PLACEMENTS)
    dropout_rate = check_non_negative_float("dropout_rate", dropout_rate)
    if dropout_rate >= 1:
        raise invalid_argument("dropout_rate", "a float in [0, 1)", dropout_rate)
    name = name or f"wide_resnet{depth}_{width}"
    rat = noise_placement == "rat"
    if rat and check_non_negative_float("inner_noise", inner_noise) != 0:
        raise invalid_argument("inner_noise", "0 with noise_placement='rat'", inner_noise)
    # With RAT placement the image gets no noise: the plan's first layer goes
    # after the stem conv instead.
    plan = _blocks.NoisePlan(init_noise, inner_noise, noise_type, seed)
    image_plan = _blocks.NoisePlan(0.0, 0.0) if rat else plan
    inputs, x = _blocks.image_input(input_shape, normalization, image_plan)
    x = _conv(x, 16, 3, 1, "stem_conv")
    if rat:
        x = plan.apply(x, first=True)
    blocks_per_group = (depth - 4) // 6
    for group, filters in enumerate((16 * width, 32 * width, 64 * width)):
        for block in range(blocks_per_group):
            strides = 2 if (group > 0 and block == 0) else 1
            x = _wide_block(x, plan, filters, strides, dropout_rate, activation, not rat,
                            name=f"group{group + 1}_block{block + 1}")
    x = _blocks.batch_norm("final_bn")(x)
    x = _blocks.activation_layer(activation, "final_act")(x)
    logits = _blocks.classifier_head(x, num_classes)
    network = keras.Model(inputs, logits, name=f"{name}_network")
    return SelfEnsemble(network, ensemble_size=ensemble_size, name=name)


def _register(depth, width):
    @register_model(f"wide_resnet{depth}_{width}")
    def builder(**kwargs):
        return wide_resnet(depth=depth, width=width, **kwargs)

    return builder


for _depth, _width in ((28, 10), (16, 4), (16, 2), (10, 1)):
    _register(_depth, _width)
