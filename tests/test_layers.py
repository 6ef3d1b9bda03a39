"""Noise layers, BReLU and the noise on/off switch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_rse import layers as rse_layers
from keras_rse.layers import BernoulliGaussianNoise, BReLU, LearnedNoise, RandomNoise

ZEROS = np.zeros((1000, 100), dtype="float32")


def _round_trip(layer):
    return layer.__class__.from_config(layer.get_config())


def test_random_noise_statistics():
    out = keras.ops.convert_to_numpy(RandomNoise(0.3, seed=1337)(ZEROS))
    assert abs(out.mean()) < 0.01
    assert abs(out.std() - 0.3) < 0.01


@pytest.mark.parametrize("shape", [(1000, 101), (3, 5, 7)])  # odd sizes: Box-Muller pairs
def test_standard_normal_is_gaussian_uncorrelated_and_shaped(shape):
    from keras_rse.layers._gaussian import standard_normal

    seed = keras.random.SeedGenerator(5)
    out = keras.ops.convert_to_numpy(standard_normal(np.zeros(shape, "float32"), "float32", seed))
    assert out.shape == shape and np.isfinite(out).all()
    big = np.concatenate([keras.ops.convert_to_numpy(
        standard_normal(ZEROS, "float32", seed)).ravel() for _ in range(5)])
    # Moments of N(0, 1) at 500,000 draws (standard errors ~0.0014, 0.001, 0.0035, 0.011).
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01
    assert abs(np.mean(big ** 3)) < 0.02 and abs(np.mean(big ** 4) - 3) < 0.06
    # Tail mass beyond 2 and 3 sigma (4.55 % and 0.27 %), and the cos/sin halves uncorrelated.
    assert abs(np.mean(np.abs(big) > 2) - 0.0455) < 0.002
    assert abs(np.mean(np.abs(big) > 3) - 0.0027) < 0.0005
    # The cos half and the sin half of one call come from the same uniform pairs.
    flat = keras.ops.convert_to_numpy(standard_normal(ZEROS, "float32", seed)).ravel()
    assert abs(np.corrcoef(flat[:len(flat) // 2], flat[len(flat) // 2:])[0, 1]) < 0.01


def test_standard_normal_in_bfloat16_and_with_an_unknown_batch():
    from keras_rse.layers._gaussian import standard_normal

    seed = keras.random.SeedGenerator(6)
    fn = tf.function(lambda x: standard_normal(x, "bfloat16", seed),
                     input_signature=[tf.TensorSpec([None, 100], tf.float32)])
    out = fn(ZEROS)
    assert out.dtype == tf.bfloat16 and out.shape == (1000, 100)
    assert abs(float(tf.math.reduce_std(tf.cast(out, tf.float32))) - 1) < 0.02


@pytest.mark.parametrize("training", [None, False, True])
def test_random_noise_is_active_whatever_training_says(training):
    layer = RandomNoise(0.1, seed=1)
    first = keras.ops.convert_to_numpy(layer(ZEROS, training=training))
    second = keras.ops.convert_to_numpy(layer(ZEROS, training=training))
    assert np.abs(first).max() > 0
    assert not np.allclose(first, second)


def test_random_noise_seed_makes_runs_repeatable():
    a = keras.ops.convert_to_numpy(RandomNoise(0.1, seed=7)(ZEROS))
    b = keras.ops.convert_to_numpy(RandomNoise(0.1, seed=7)(ZEROS))
    np.testing.assert_array_equal(a, b)


def test_random_noise_in_compiled_function_draws_fresh_noise():
    layer = RandomNoise(0.1, seed=2)
    fn = tf.function(lambda x: layer(x))
    assert not np.allclose(fn(ZEROS).numpy(), fn(ZEROS).numpy())


def test_bernoulli_gaussian_statistics():
    out = keras.ops.convert_to_numpy(BernoulliGaussianNoise(0.5, rate=0.3, seed=3)(ZEROS))
    perturbed = out != 0
    assert abs(perturbed.mean() - 0.3) < 0.01
    assert abs(out[perturbed].std() - 0.5) < 0.015


@pytest.mark.parametrize("per, expected_shape", [("channel", (100,)), ("element", (100,))])
def test_learned_noise_shapes_and_statistics(per, expected_shape):
    layer = LearnedNoise(initial_stddev=0.4, per=per, seed=4)
    out = keras.ops.convert_to_numpy(layer(ZEROS))
    assert tuple(layer.scale.shape) == expected_shape
    assert abs(out.std() - 0.4) < 0.01


def test_learned_noise_per_element_scale_has_input_shape():
    layer = LearnedNoise(per="element")
    layer(np.zeros((2, 4, 4, 3), "float32"))
    assert tuple(layer.scale.shape) == (4, 4, 3)
    assert tuple(layer.offset.shape) == (4, 4, 3)


def test_learned_noise_scale_is_trained_and_stays_non_negative():
    layer = LearnedNoise(initial_stddev=0.05, per="channel", learn_offset=False, seed=5)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, layer(inputs))
    # Minimising the output's square drives the scale down; a large step would
    # overshoot below zero without the NonNeg constraint.
    model.compile(optimizer=keras.optimizers.SGD(10.0), loss="mse")
    before = layer.scale.numpy().copy()
    model.fit(np.zeros((64, 8), "float32"), np.zeros((64, 8), "float32"), epochs=2, verbose=0)
    after = layer.scale.numpy()
    assert not np.allclose(before, after)
    assert (after >= 0).all()


def test_brelu_bounds():
    x = np.array([[-2.0, 0.5, 3.0]], "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(BReLU(1.0)(x)), [[0.0, 0.5, 1.0]])


@pytest.mark.parametrize(
    "layer",
    [RandomNoise(0.2, seed=3), BernoulliGaussianNoise(0.2, rate=0.4, seed=3),
     LearnedNoise(0.3, per="element", learn_offset=False, seed=3), BReLU(2.0)],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip_and_safe_mode_load(layer, tmp_path):
    clone = _round_trip(layer)
    assert clone.get_config() == layer.get_config()
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, layer(inputs))
    path = str(tmp_path / "layer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.layers[-1]) is type(layer)
    assert loaded.layers[-1].get_config() == layer.get_config()


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: RandomNoise(-1.0), r"`stddev`.*Received: stddev=-1\.0"),
        (lambda: RandomNoise(float("nan")), r"`stddev`.*Received: stddev=nan"),
        (lambda: RandomNoise("0.1"), r"`stddev`.*Received: stddev='0.1'"),
        (lambda: BernoulliGaussianNoise(0.1, rate=1.5), r"`rate`.*Received: rate=1\.5"),
        (lambda: LearnedNoise(per="pixel"), r"`per`.*Received: per='pixel'"),
        (lambda: LearnedNoise(initial_stddev=-0.1), r"`initial_stddev`.*Received"),
        (lambda: BReLU(0.0), r"`max_value`.*Received: max_value=0\.0"),
    ],
)
def test_bad_layer_arguments_raise_clear_errors(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_noise_switch_makes_outputs_deterministic_and_restores(tiny_model, images):
    with rse_layers.noise_scale(tiny_model, 0.0) as changed:
        assert len(changed) == 2
        np.testing.assert_array_equal(tiny_model(images).numpy(), tiny_model(images).numpy())
    assert set(rse_layers.get_noise_scales(tiny_model).values()) == {1.0}
    assert not np.allclose(tiny_model(images).numpy(), tiny_model(images).numpy())


def test_noise_switch_reaches_already_compiled_predict(tiny_model, images):
    tiny_model.predict(images, verbose=0)  # compiles predict with noise on
    rse_layers.set_noise_scale(tiny_model, 0.0)
    first = tiny_model.predict(images, verbose=0)
    np.testing.assert_array_equal(first, tiny_model.predict(images, verbose=0))


def test_noise_switch_by_pattern_and_rescale(tiny_model, images):
    changed = rse_layers.set_noise_scale(tiny_model, 0.5, pattern="inner_noise*")
    assert [layer.name for layer in changed] == ["inner_noise_1"]
    assert rse_layers.get_noise_scales(tiny_model) == {"init_noise": 1.0, "inner_noise_1": 0.5}


def test_noise_switch_bad_arguments(tiny_model):
    with pytest.raises(ValueError, match=r"`scale`.*Received: scale=-1"):
        rse_layers.set_noise_scale(tiny_model, -1)
    with pytest.raises(ValueError, match=r"`pattern`.*Received: pattern='nothing\*'"):
        rse_layers.set_noise_scale(tiny_model, 0.0, pattern="nothing*")


def test_reseeding_repeats_the_noise_draws_even_in_compiled_predict(tiny_model, images):
    tiny_model.predict(images, verbose=0)  # compiled before the reseed
    assert rse_layers.reseed_random_generators(tiny_model, "part-a") == 2
    first = tiny_model.predict(images, verbose=0)
    tiny_model.predict(images, verbose=0)  # moves the generators on
    rse_layers.reseed_random_generators(tiny_model, "part-a")
    np.testing.assert_array_equal(first, tiny_model.predict(images, verbose=0))
    rse_layers.reseed_random_generators(tiny_model, "part-b")
    assert not np.allclose(first, tiny_model.predict(images, verbose=0))
    # Each generator gets its own stream: equal streams would correlate the layers' noise.
    streams = [int(state.numpy()[0]) for state in rse_layers.random_generator_states(tiny_model)]
    assert len(set(streams)) == len(streams)
