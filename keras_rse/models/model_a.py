"""The STL-10 "Model A" of the RSE paper, with a noise layer before every conv."""

from keras_rse.models import _blocks
from keras_rse.models._registry import register_model
from keras_rse.models.self_ensemble import SelfEnsemble


def model_a(
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (96, 96, 3),
    base_filters: int = 32,
    init_noise: float = 0.2,
    inner_noise: float = 0.1,
    noise_type: str = "gaussian",
    activation: str = "relu",
    normalization: str = "symmetric",
    ensemble_size: int = 10,
    seed: int | None = None,
    name: str = "model_a",
) -> SelfEnsemble:
    """Builds Model A: the STL-10 CNN of pytorch-playground that RSE used.

    Convs (3x3) of ``n, M, 2n, M, 4n, M, 4n, M, 8n (valid), 8n (valid), M``
    filters with ``n = base_filters``, each followed by batch norm without
    scale or offset (as the original) and ReLU; then a dense layer from the
    8n features. At 96x96 the last map is 1x1 (1.13 M parameters for n = 32).
    ``normalization`` defaults to ``"symmetric"`` ([-1, 1]): dataset-free,
    since the CIFAR statistics do not describe STL-10.

    Args:
        num_classes: Number of classes.
        input_shape: ``(height, width, channels)``; 96x96 for STL-10.
        base_filters: ``n`` above (32 in the original).
        init_noise: Noise stddev on the image (RSE: 0.2).
        inner_noise: Noise stddev before the other convs (RSE: 0.1).
        noise_type: ``"gaussian"`` or ``"learned"``.
        activation: ``"relu"`` or ``"brelu"``.
        normalization: ``"symmetric"``, ``"cifar10"`` or ``"none"``.
        ensemble_size: Draws averaged by `predict`.
        seed: Optional integer seed for the noise layers.
        name: Model name.

    Returns:
        A `SelfEnsemble`.

    Reference:
        RSE paper, section 4, footnote 4 (aaron-xichen/pytorch-playground, stl10).
    """
    _blocks.check_num_classes(num_classes)
    n = int(base_filters)
    layout = (n, "M", 2 * n, "M", 4 * n, "M", 4 * n, "M", (8 * n, "valid"), (8 * n, "valid"), "M")
    plan = _blocks.NoisePlan(init_noise, inner_noise, noise_type, seed)
    inputs, x = _blocks.image_input(input_shape, normalization, plan)
    # Batch norm without scale or offset, as the original (affine=False).
    x = _blocks.plain_conv_stack(x, layout, plan, activation, center=False, scale=False)
    return _blocks.flatten_head_model(inputs, x, num_classes, name, ensemble_size)


@register_model("model_a")
def _model_a(**kwargs):
    return model_a(**kwargs)
