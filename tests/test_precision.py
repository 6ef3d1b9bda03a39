"""`with_dtype_policy`: a bfloat16 copy with the same weights, used to attack cheaply."""

import importlib

import numpy as np
import pytest

from keras_rse import attacks, eval as rse_eval
from keras_rse.layers import noise_layers, noise_scale, random_generator_states
from keras_rse.models import SelfEnsemble, create_model, with_dtype_policy

# The module whose reseed_random_generators an evaluation calls.
RUN_MODULE = importlib.import_module("keras_rse.eval._run")


def test_copy_keeps_weights_and_computes_in_bfloat16():
    model = create_model("vgg16_tiny", ensemble_size=3)
    copy = with_dtype_policy(model)
    assert isinstance(copy, SelfEnsemble) and copy.ensemble_size == 3
    assert copy.network is not model.network
    assert len(noise_layers(copy)) == len(noise_layers(model)) > 0
    convs = [layer for layer in copy.network.layers if "conv" in layer.name]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    for original, copied in zip(model.network.weights, copy.network.weights):
        assert copied.dtype == "float32"  # mixed precision: variables stay float32
        np.testing.assert_array_equal(np.asarray(original), np.asarray(copied))
    x = np.random.default_rng(0).random((8, 32, 32, 3), np.float32)
    with noise_scale(model, 0.0), noise_scale(copy, 0.0):
        exact = np.asarray(model(x, training=False))
        approx = np.asarray(copy(x, training=False), np.float32)
    assert np.max(np.abs(exact - approx)) <= 0.02 * np.max(np.abs(exact)) + 1e-3


def test_bfloat16_pgd_judged_in_float32_is_as_strong(trained_cnn, attack_data):
    """The perturbation found with bfloat16 gradients still fools the float32 model."""
    x, y = attack_data
    copy = with_dtype_policy(trained_cnn)
    result = attacks.pgd(copy, x, y, eps=8 / 255, steps=10, step_size=2 / 255, seed=0)
    assert np.max(np.abs(result.x_adv.numpy() - x)) <= 8 / 255 + 1e-6
    accuracy = np.mean(np.argmax(trained_cnn.predict(result.x_adv, verbose=0), 1) == y)
    assert accuracy <= 0.05, accuracy


def test_evaluate_records_the_attack_precision_and_keeps_cw_in_float32(tiny_model, images,
                                                                        monkeypatch):
    y = np.arange(len(images), dtype=np.int32) % 10
    settings = dict(suites_to_run=["quick", "rse_table2"], eot_samples=2, n_examples=4,
                    ensemble_sizes=(1,), cw_steps=2, run_diagnostics=False, progress=False,
                    attack_policy="mixed_bfloat16")
    report = rse_eval.evaluate(tiny_model, images, y, **settings)
    policies = {a["settings"]["attack"]: a["settings"]["attack_policy"] for a in report["attacks"]}
    assert policies == {"fgsm": "mixed_bfloat16", "pgd": "mixed_bfloat16", "cw": "as loaded"}
    # The copy's noise is reseeded per part too, on streams of its own (the attack must not
    # know the draws that judge it).
    streams = {"judge": set(), "copy": set()}
    real_reseed = RUN_MODULE.reseed_random_generators

    def reseed_and_record(model, key, strategy=None):
        real_reseed(model, key, strategy)
        streams["judge" if model is tiny_model else "copy"].update(
            int(state.numpy()[0]) for state in random_generator_states(model))

    monkeypatch.setattr(RUN_MODULE, "reseed_random_generators", reseed_and_record)
    rse_eval.evaluate(tiny_model, images, y, **settings)
    assert streams["copy"] and not streams["judge"] & streams["copy"]


def test_float16_attack_gradients_underflow_so_evaluate_refuses_them(tiny_model, images):
    """A logit margin of 47: the CE gradient (~exp(-47)) is 0 in float16, not in bfloat16."""
    import keras
    import tensorflow as tf

    gradients = {}
    for policy in ("mixed_bfloat16", "mixed_float16"):
        dense = keras.layers.Dense(10, dtype=policy, kernel_initializer="zeros")
        dense.build((None, 8))
        kernel = np.zeros((8, 10), np.float32)
        kernel[:, 3], kernel[0, 5] = 6.0, 1.0
        dense.kernel.assign(kernel)
        x = tf.ones((1, 8))
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = tf.cast(dense(x), tf.float32)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant([3]), logits)
        gradients[policy] = float(tf.reduce_max(tf.abs(tape.gradient(loss, x))))
    assert gradients["mixed_bfloat16"] > 0 and gradients["mixed_float16"] == 0, gradients
    y = np.zeros(len(images), np.int32)
    with pytest.raises(ValueError, match=r"`attack_policy`.*Received: attack_policy="
                                         r"'mixed_float16'"):
        rse_eval.evaluate(tiny_model, images, y, n_examples=4, ensemble_sizes=(1,),
                          run_diagnostics=False, progress=False, attack_policy="mixed_float16")


@pytest.mark.parametrize("model, policy, match", [
    ("tiny", "float64", "policy"),
    ("callable", "mixed_bfloat16", "model"),
])
def test_bad_arguments_name_the_argument(tiny_model, model, policy, match):
    model = tiny_model if model == "tiny" else (lambda x: x)
    with pytest.raises(ValueError, match=match):
        with_dtype_policy(model, policy)
