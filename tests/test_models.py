"""Builders, registry, parameter counts, noise placement and `randomize`."""

import keras
import numpy as np
import pytest

import keras_rse
from keras_rse.layers import noise_layers, noise_scale
from keras_rse.models import create_model, list_models, randomize, wide_resnet

ALL_MODELS = list_models()


def _input_shape(model):
    return tuple(model.network.inputs[0].shape[1:])


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "name, exact, published_millions",
    [
        # Exact trainable counts, and the figures the papers / issue quote.
        ("vgg16", 14_728_266, 14.7),
        ("resnext29_8x64d", 34_426_698, 34.4),
        ("wide_resnet28_10", 36_479_194, 36.5),
        ("model_a", 1_128_650, None),
    ],
)
def test_parameter_counts_match_published_figures(name, exact, published_millions):
    model = create_model(name)
    assert _trainable(model) == exact
    if published_millions is not None:
        assert round(_trainable(model) / 1e6, 1) == published_millions


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_registered_model_runs_and_ensembles(name):
    model = create_model(name, seed=1)
    x = np.random.default_rng(0).random((2, *_input_shape(model)), dtype=np.float32)
    logits = model(x).numpy()
    assert logits.shape == (2, 10) and np.isfinite(logits).all()
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.is_randomized


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_registered_model_config_round_trip(name):
    model = create_model(name)
    clone = model.__class__.from_config(model.get_config())
    assert clone.count_params() == model.count_params()
    assert [layer.name for layer in clone.network.layers] == [
        layer.name for layer in model.network.layers
    ]
    assert clone.ensemble_size == model.ensemble_size


def test_save_load_keeps_weights_and_ensemble_size(tmp_path):
    model = create_model("vgg16_tiny", ensemble_size=7, seed=2)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, keras_rse.models.SelfEnsemble)
    assert loaded.ensemble_size == 7
    x = np.random.default_rng(1).random((3, 32, 32, 3), dtype=np.float32)
    with noise_scale(model, 0.0), noise_scale(loaded, 0.0):
        np.testing.assert_allclose(model(x).numpy(), loaded(x).numpy(), atol=1e-5)


def test_noise_before_every_conv_rse_placement():
    model = create_model("vgg16_tiny")
    layers = model.network.layers
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 13
    # init noise acts on the raw [0, 1] image, before normalisation.
    assert [layer.name for layer in layers[:3]] == ["images", "init_noise", "normalize"]
    for i in convs[1:]:
        assert layers[i - 1].name.startswith("inner_noise_")
    assert layers[convs[0] - 1].name == "normalize"


def test_default_noise_levels_are_the_papers():
    vgg = create_model("vgg16_tiny")
    stddevs = {layer.name: layer.stddev for layer in noise_layers(vgg)}
    assert stddevs["init_noise"] == 0.2 and stddevs["inner_noise_1"] == 0.1
    resnext = create_model("resnext29_tiny")
    assert {layer.stddev for layer in noise_layers(resnext)} == {0.1}


def test_wide_resnet_rat_placement_is_one_layer_after_the_stem():
    model = wide_resnet(depth=10, width=1, noise_placement="rat", init_noise=1.0,
                        inner_noise=0.0, normalization="symmetric")
    layers = model.network.layers
    (noise,) = noise_layers(model)
    index = layers.index(noise)
    assert layers[index - 1].name == "stem_conv" and noise.stddev == 1.0


def test_learned_noise_type_builds_trainable_noise():
    model = wide_resnet(depth=10, width=1, noise_placement="rat", noise_type="learned",
                        init_noise=1.0, inner_noise=0.0)
    (noise,) = noise_layers(model)
    assert isinstance(noise, keras_rse.layers.LearnedNoise)
    assert any(w is noise.scale for w in model.trainable_weights)


def test_zero_noise_gives_a_deterministic_undefended_network():
    model = create_model("vgg16_tiny", init_noise=0.0, inner_noise=0.0)
    assert not noise_layers(model) and not model.is_randomized
    x = np.random.default_rng(2).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())


def test_brelu_activation_replaces_relu():
    model = create_model("vgg16_tiny", activation="brelu")
    assert sum(isinstance(l, keras_rse.layers.BReLU) for l in model.network.layers) == 13


def test_list_models_pattern():
    assert list_models("wide_resnet*") == [
        "wide_resnet10_1", "wide_resnet16_2", "wide_resnet16_4", "wide_resnet28_10"]
    assert "vgg16" in ALL_MODELS and "model_a" in ALL_MODELS


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: create_model("vgg61"), r"`name`.*did you mean 'vgg16'.*Received: name='vgg61'"),
        (lambda: create_model("vgg16", init_noise=-0.2), r"`init_noise`.*Received: init_noise=-0.2"),
        (lambda: create_model("vgg16", num_classes=1), r"`num_classes`.*Received: num_classes=1"),
        (lambda: create_model("vgg16", noise_type="uniform"), r"`noise_type`.*Received"),
        (lambda: create_model("vgg16", input_shape=(32, 32)), r"`input_shape`.*Received"),
        (lambda: create_model("vgg16", ensemble_size=0), r"`ensemble_size`.*Received: ensemble_size=0"),
        (lambda: wide_resnet(depth=27), r"`depth`.*Received: depth=27"),
        (lambda: wide_resnet(noise_placement="after"), r"`noise_placement`.*Received"),
        (lambda: wide_resnet(noise_placement="rat", inner_noise=0.1),
         r"`inner_noise`.*Expected 0 with noise_placement='rat'"),
        (lambda: create_model("vgg16", normalization="imagenet"), r"`normalization`.*Received"),
    ],
)
def test_bad_builder_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _small_cnn():
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(4, 3, name="c1"),
        keras.layers.ReLU(),
        keras.layers.DepthwiseConv2D(3, name="c2"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, name="head"),
    ])


def test_randomize_inserts_noise_before_every_conv_and_keeps_weights():
    base = _small_cnn()
    model = randomize(base, init_noise=0.3, inner_noise=0.05, seed=4)
    names = [layer.name for layer in model.network.layers]
    assert names.index("init_noise") + 1 == names.index("c1")
    assert names.index("inner_noise_1") + 1 == names.index("c2")
    x = np.random.default_rng(3).random((4, 16, 16, 3), dtype=np.float32)
    with noise_scale(model, 0.0):
        np.testing.assert_allclose(model(x).numpy(), base(x).numpy(), atol=1e-5)
    assert not np.allclose(model(x).numpy(), model(x).numpy())
    assert not noise_layers(base)  # the original model is left untouched


def test_randomize_functional_application():
    base = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None)
    model = randomize(base)
    convs = [l for l in base.layers if isinstance(l, (keras.layers.Conv2D,
                                                      keras.layers.DepthwiseConv2D))]
    assert len(noise_layers(model)) == len(convs)


def test_randomize_rejects_bad_models():
    softmax_model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3),
                                                   classes=10)
    with pytest.raises(ValueError, match=r"`model`.*outputs logits"):
        randomize(softmax_model)
    with pytest.raises(ValueError, match=r"`model`.*functional or Sequential"):
        randomize(keras_rse.models.vgg16(width_multiplier=0.125))  # a subclassed model
    dense_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"`model`.*at least one conv"):
        randomize(dense_only)
