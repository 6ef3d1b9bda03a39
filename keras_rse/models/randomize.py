"""Insert RSE noise layers before every conv of any functional Keras model."""

import keras

# Keras 3 exposes no public "is this a functional model" test; the class is stable.
from keras.src.models.functional import Functional

from keras_rse._validation import invalid_argument
from keras_rse.models._blocks import NoisePlan
from keras_rse.models.self_ensemble import SelfEnsemble

# Every Keras layer that convolves; each gets a noise layer in front of it.
CONV_LAYER_TYPES = (
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D, keras.layers.SeparableConv2D,
)


def _ends_in_softmax(model):
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax" or isinstance(last, keras.layers.Softmax)


def _as_functional(model):
    """Returns a functional model calling the same layers as a Sequential model."""
    if not model.built or not model.inputs:
        raise invalid_argument(
            "model", "a built Sequential model (give it a keras.Input first)", model.name
        )
    inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
    x = inputs
    for layer in model.layers:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def randomize(
    model: keras.Model,
    init_noise: float = 0.2,
    inner_noise: float = 0.1,
    noise_type: str = "gaussian",
    ensemble_size: int = 10,
    copy_weights: bool = True,
    seed: int | None = None,
) -> SelfEnsemble:
    """Returns a copy of ``model`` with a noise layer before every conv, as a `SelfEnsemble`.

    RSE's claim that the defense is "easy to integrate into any network",
    made real: the model is cloned (`keras.models.clone_model`, nested models
    included) and each call of a conv layer receives fresh noise first,
    ``init_noise`` for the first conv reached from the input and
    ``inner_noise`` for all others. The original model is not changed.

    ``init_noise`` is in the units of the first conv's input: if the model
    normalises its input with a layer, the noise lands after that layer. The
    model must output logits (build Keras applications with
    ``classifier_activation=None``), since `SelfEnsemble` applies softmax.

    Args:
        model: A functional or Sequential `keras.Model`.
        init_noise: Noise stddev before the first conv.
        inner_noise: Noise stddev before every other conv.
        noise_type: ``"gaussian"`` or ``"learned"``.
        ensemble_size: Draws averaged by `predict`.
        copy_weights: Copy the trained weights of ``model`` into the copy
            (otherwise the copy is freshly initialised).
        seed: Optional integer seed for the noise layers.

    Returns:
        A `SelfEnsemble` whose ``network`` is the randomized copy.

    Example:
        >>> base = keras.applications.ResNet50(weights=None, classifier_activation=None)
        >>> model = randomize(base, init_noise=0.2, inner_noise=0.1)
    """
    if isinstance(model, keras.Sequential):
        model = _as_functional(model)  # clone_model's call_function needs a graph
    elif not isinstance(model, Functional):
        raise invalid_argument("model", "a functional or Sequential keras.Model", model)
    if _ends_in_softmax(model):
        raise invalid_argument(
            "model", "a model that outputs logits (its last layer applies softmax; "
            "rebuild it with classifier_activation=None)", model.name,
        )
    plan = NoisePlan(init_noise, inner_noise, noise_type, seed)
    convs_seen = []

    def call_with_noise(layer, *args, **kwargs):
        if isinstance(layer, CONV_LAYER_TYPES):
            args = (plan.apply(args[0], first=not convs_seen), *args[1:])
            convs_seen.append(layer.name)
        return layer(*args, **kwargs)

    network = keras.models.clone_model(model, call_function=call_with_noise, recursive=True)
    if not convs_seen:
        raise invalid_argument("model", "a model containing at least one conv layer", model.name)
    if copy_weights:
        for layer in model.layers:
            if layer.weights:
                network.get_layer(layer.name).set_weights(layer.get_weights())
    return SelfEnsemble(network, ensemble_size=ensemble_size, name=f"{model.name}_rse")
