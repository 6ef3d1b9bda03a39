"""`SelfEnsemble`: one noisy member per call, averaged softmax in `predict`."""

import keras
import numpy as np
import pytest

from keras_rse.layers import noise_scale
from keras_rse.models import SelfEnsemble

from conftest import build_tiny_network


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_call_gives_one_random_member(tiny_model, images):
    first, second = tiny_model(images).numpy(), tiny_model(images).numpy()
    assert first.shape == (8, 10)
    assert not np.allclose(first, second)


def test_predict_returns_probabilities(tiny_model, images):
    probs = tiny_model.predict(images, verbose=0)
    assert probs.shape == (8, 10) and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_ensemble_variance_falls_as_ensemble_grows(tiny_model, images):
    def spread(n):
        tiny_model.ensemble_size = n
        runs = np.stack([tiny_model.predict(images, verbose=0) for _ in range(12)])
        return runs.var(axis=0).mean()

    var_1, var_8, var_32 = spread(1), spread(8), spread(32)
    # Averaging n independent draws divides the variance by n (in expectation).
    assert var_8 < var_1 / 3
    assert var_32 < var_8 / 2


def test_with_noise_off_ensemble_equals_softmax_of_logits(tiny_model, images):
    with noise_scale(tiny_model, 0.0):
        expected = _softmax(tiny_model(images).numpy())
        np.testing.assert_allclose(tiny_model.predict(images, verbose=0), expected, atol=1e-5)


@pytest.mark.parametrize("max_rows, ensemble_size", [(1, 5), (5, 7), (24, 10), (10_000, 3)])
def test_chunked_passes_cover_every_draw(images, max_rows, ensemble_size):
    """Chunking must average exactly ensemble_size draws, however it splits them."""
    network = build_tiny_network(seed=3)
    model = SelfEnsemble(network, ensemble_size=ensemble_size, max_rows_per_pass=max_rows)
    calls = []
    original_call = network.call

    def counting_call(inputs, *args, **kwargs):
        calls.append(inputs.shape[0])
        return original_call(inputs, *args, **kwargs)

    network.call = counting_call
    probs = model.ensemble_probabilities(images[:3]).numpy()  # eager: every pass is seen
    assert sum(calls) == 3 * ensemble_size
    assert max(calls) <= max(3, max_rows)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_chunked_and_single_pass_ensembles_agree_statistically(images):
    network = build_tiny_network(seed=5)
    one_pass = SelfEnsemble(network, ensemble_size=400, max_rows_per_pass=10_000)
    many_passes = SelfEnsemble(network, ensemble_size=400, max_rows_per_pass=16)
    np.testing.assert_allclose(
        one_pass.predict(images, verbose=0), many_passes.predict(images, verbose=0), atol=0.03)


@pytest.mark.parametrize("count, batch_size", [(37, 16), (1, 1), (3, 1)])
def test_predict_over_several_batches(tiny_model, count, batch_size):
    x = np.random.default_rng(4).random((count, 16, 16, 3), dtype=np.float32)
    probs = tiny_model.predict(x, batch_size=batch_size, verbose=0)
    assert probs.shape == (count, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_deterministic_network_is_not_randomized(images):
    model = SelfEnsemble(build_tiny_network(0.0, 0.0), ensemble_size=50)
    assert not model.is_randomized
    np.testing.assert_allclose(
        model.predict(images, verbose=0), _softmax(model(images).numpy()), atol=1e-5)


def test_network_is_reachable_for_raw_logits(tiny_model, images):
    assert isinstance(tiny_model.network, keras.Model)
    assert tiny_model.network(images).shape == (8, 10)


def test_fit_trains_through_the_noise(tiny_model, images):
    tiny_model.compile(optimizer="adam",
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.numpy().copy() for w in tiny_model.trainable_weights]
    history = tiny_model.fit(images, np.arange(8) % 10, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, tiny_model.trainable_weights))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_ensemble_size(bad, tiny_model):
    with pytest.raises(ValueError, match=rf"`ensemble_size`.*Received: ensemble_size={bad!r}"):
        tiny_model.ensemble_size = bad
    with pytest.raises(ValueError, match=r"`ensemble_size`"):
        SelfEnsemble(build_tiny_network(), ensemble_size=bad)


def test_wrong_input_rank_is_a_clear_error(tiny_model):
    with pytest.raises(ValueError, match=r"`inputs`.*4D batch.*Received: inputs.shape=\(16, 16, 3\)"):
        tiny_model(np.zeros((16, 16, 3), "float32"))
    with pytest.raises(ValueError, match=r"`x`.*Received: x.shape=\(2, 16\)"):
        tiny_model.ensemble_probabilities(np.zeros((2, 16), "float32"))


def test_network_must_be_a_model():
    with pytest.raises(ValueError, match=r"`network`.*keras.Model"):
        SelfEnsemble("vgg16")


def test_mixed_bfloat16_policy(images):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = SelfEnsemble(build_tiny_network(seed=6), ensemble_size=4)
        logits = model(images)
        probs = model.predict(images, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert str(logits.dtype) == "<dtype: 'bfloat16'>"
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize("scale, offset, expected", [
    (255.0, 0.0, r"values in \[0, 1\] \(8-bit images: divide by 255\).*values in \[[\d.]+, 2\d\d"),
    (1.0, -0.5, r"values in \[0, 1\]\. Received: x='values in \[-0\.\d+, 0\.\d+\]'"),
])
def test_images_outside_pixel_range_are_refused(tiny_model, images, scale, offset, expected):
    bad = images * scale + offset
    with pytest.raises(ValueError, match=rf"`x`.*{expected}"):
        tiny_model.predict(bad, verbose=0)
    with pytest.raises(ValueError, match=r"`x`.*values in \[0, 1\]"):
        tiny_model.ensemble_probabilities(bad)


def test_predict_refuses_nan(tiny_model, images):
    bad = images.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`x`.*finite values"):
        tiny_model.predict(bad, verbose=0)
