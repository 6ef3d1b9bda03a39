"""The CIFAR VGG16 of the RSE paper, with a noise layer before every conv."""

from keras_rse._validation import check_non_negative_float, invalid_argument
from keras_rse.models import _blocks
from keras_rse.models._registry import register_model
from keras_rse.models.self_ensemble import SelfEnsemble

# Filters per conv; "M" is a 2x2 max pooling. 13 convs, 5 poolings: 32 -> 1.
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    init_noise: float = 0.2,
    inner_noise: float = 0.1,
    noise_type: str = "gaussian",
    activation: str = "relu",
    normalization: str = "cifar10",
    width_multiplier: float = 1.0,
    ensemble_size: int = 10,
    seed: int | None = None,
    name: str = "vgg16",
) -> SelfEnsemble:
    """Builds the noisy CIFAR VGG16 (13 convs with batch norm, 512 -> classes head).

    Each conv is ``noise -> conv3x3 -> batch norm -> activation``; the layout
    is the CIFAR VGG16 of the RSE code (14.7 M parameters for 10 classes).
    With ``init_noise = inner_noise = 0`` there are no noise layers: the
    undefended baseline.

    Args:
        num_classes: Number of classes (>= 2).
        input_shape: ``(height, width, channels)``; spatial size must survive
            five 2x2 poolings (32 gives a 1x1 map).
        init_noise: Noise stddev on the [0, 1] image before the first conv
            (RSE: 0.2).
        inner_noise: Noise stddev before each other conv (RSE: 0.1).
        noise_type: ``"gaussian"`` or ``"learned"``.
        activation: ``"relu"`` or ``"brelu"`` (Robust-Opt baseline).
        normalization: ``"cifar10"``, ``"symmetric"`` or ``"none"``.
        width_multiplier: Scales every conv's filters (tiny test variants).
        ensemble_size: Draws averaged by `predict`.
        seed: Optional integer seed for the noise layers.
        name: Model name.

    Returns:
        A `SelfEnsemble` around the functional network.

    Reference:
        Liu et al., "Towards Robust Neural Networks via Random Self-ensemble",
        ECCV 2018, Fig. 1 and Table 1.
    """
    _blocks.check_num_classes(num_classes)
    width_multiplier = check_non_negative_float("width_multiplier", width_multiplier)
    if width_multiplier == 0:
        raise invalid_argument("width_multiplier", "a float > 0", width_multiplier)
    plan = _blocks.NoisePlan(init_noise, inner_noise, noise_type, seed)
    inputs, x = _blocks.image_input(input_shape, normalization, plan)
    x = _blocks.plain_conv_stack(x, VGG16_LAYOUT, plan, activation, width_multiplier)
    return _blocks.flatten_head_model(inputs, x, num_classes, name, ensemble_size)


@register_model("vgg16")
def _vgg16(**kwargs):
    return vgg16(**kwargs)


@register_model("vgg16_tiny")
def _vgg16_tiny(**kwargs):
    kwargs.setdefault("width_multiplier", 0.125)
    kwargs.setdefault("name", "vgg16_tiny")
    return vgg16(**kwargs)
