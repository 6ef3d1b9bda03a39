"""ResNeXt-29 for CIFAR (Xie et al., 2017) with a noise layer before every conv."""

import keras

from keras_rse._validation import check_positive_int
from keras_rse.models import _blocks
from keras_rse.models._registry import register_model
from keras_rse.models.self_ensemble import SelfEnsemble


def _conv_bn(x, plan, filters, kernel_size, name, strides=1, groups=1):
    """noise -> conv (no bias) -> batch norm."""
    x = plan.apply(x)
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", groups=groups,
        use_bias=False, name=f"{name}_conv",
    )(x)
    return _blocks.batch_norm(f"{name}_bn")(x)


def _bottleneck(x, plan, width, out_filters, cardinality, strides, activation, name):
    """1x1 reduce -> grouped 3x3 -> 1x1 expand, plus a (projected) shortcut."""
    shortcut = x
    if x.shape[-1] != out_filters or strides != 1:
        shortcut = _conv_bn(x, plan, out_filters, 1, f"{name}_proj", strides=strides)
    y = _conv_bn(x, plan, width, 1, f"{name}_reduce")
    y = _blocks.activation_layer(activation, f"{name}_reduce_act")(y)
    y = _conv_bn(y, plan, width, 3, f"{name}_group", strides=strides, groups=cardinality)
    y = _blocks.activation_layer(activation, f"{name}_group_act")(y)
    y = _conv_bn(y, plan, out_filters, 1, f"{name}_expand")
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return _blocks.activation_layer(activation, f"{name}_out_act")(y)


def resnext29(
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    cardinality: int = 8,
    bottleneck_width: int = 64,
    widen_factor: int = 4,
    init_noise: float = 0.1,
    inner_noise: float = 0.1,
    noise_type: str = "gaussian",
    activation: str = "relu",
    normalization: str = "cifar10",
    ensemble_size: int = 10,
    seed: int | None = None,
    name: str = "resnext29",
) -> SelfEnsemble:
    """Builds ResNeXt-29 (C x d) with noise before every conv.

    A 3x3 stem of 64 filters, then 3 stages of 3 bottleneck blocks. Stage s
    (0, 1, 2) has grouped width ``cardinality * bottleneck_width * 2**s`` and
    ``64 * widen_factor * 2**s`` output channels; stages 2 and 3 halve the
    resolution. 8x64d has 34.4 M parameters for 10 classes (the paper's
    figure); the RSE code used 2x64d. Every conv, the 1x1 shortcut
    projections included, gets its own noise draw. RSE's ResNeXt setting is
    init 0.1 / inner 0.1 (RSE Table 1), the defaults here.

    Args:
        num_classes: Number of classes.
        input_shape: ``(height, width, channels)``.
        cardinality: Number of groups C.
        bottleneck_width: Width d of each group in the first stage.
        widen_factor: Output channels of stage 1 are ``64 * widen_factor``.
        init_noise: Noise stddev on the image.
        inner_noise: Noise stddev before the other convs.
        noise_type: ``"gaussian"`` or ``"learned"``.
        activation: ``"relu"`` or ``"brelu"``.
        normalization: ``"cifar10"``, ``"symmetric"`` or ``"none"``.
        ensemble_size: Draws averaged by `predict`.
        seed: Optional integer seed for the noise layers.
        name: Model name.

    Returns:
        A `SelfEnsemble`.

    Reference:
        Xie et al., "Aggregated Residual Transformations for Deep Neural
        Networks", CVPR 2017 (CIFAR ResNeXt-29).
    """
    _blocks.check_num_classes(num_classes)
    cardinality = check_positive_int("cardinality", cardinality)
    bottleneck_width = check_positive_int("bottleneck_width", bottleneck_width)
    widen_factor = check_positive_int("widen_factor", widen_factor)
    plan = _blocks.NoisePlan(init_noise, inner_noise, noise_type, seed)
    inputs, x = _blocks.image_input(input_shape, normalization, plan)
    x = keras.layers.Conv2D(64, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = _blocks.batch_norm("stem_bn")(x)
    x = _blocks.activation_layer(activation, "stem_act")(x)
    for stage in range(3):
        width = cardinality * bottleneck_width * 2**stage
        out_filters = 64 * widen_factor * 2**stage
        for block in range(3):
            strides = 2 if (stage > 0 and block == 0) else 1
            x = _bottleneck(x, plan, width, out_filters, cardinality, strides, activation,
                            name=f"stage{stage + 1}_block{block + 1}")
    logits = _blocks.classifier_head(x, num_classes)
    network = keras.Model(inputs, logits, name=f"{name}_network")
    return SelfEnsemble(network, ensemble_size=ensemble_size, name=name)


@register_model("resnext29_8x64d")
def _resnext29_8x64d(**kwargs):
    kwargs.setdefault("name", "resnext29_8x64d")
    return resnext29(cardinality=8, bottleneck_width=64, **kwargs)


@register_model("resnext29_2x64d")
def _resnext29_2x64d(**kwargs):
    kwargs.setdefault("name", "resnext29_2x64d")
    return resnext29(cardinality=2, bottleneck_width=64, **kwargs)


@register_model("resnext29_tiny")
def _resnext29_tiny(**kwargs):
    kwargs.setdefault("name", "resnext29_tiny")
    return resnext29(cardinality=2, bottleneck_width=4, widen_factor=1, **kwargs)
