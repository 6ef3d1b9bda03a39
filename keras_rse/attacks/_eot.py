"""The one Expectation-over-Transformation (EOT) mechanism used by every attack.

A randomized model gives a different function at every call, so an attack must
optimise an expectation over the noise (Athalye et al., 2018). ``k`` draws are
obtained by tiling the batch ``k`` times and running one forward pass (the
noise layers draw independent noise for every row), never by a Python loop.
Three estimators of the objective are offered:

* ``"loss"`` (default): the mean over draws of the per-draw loss; its
  gradient is the mean of the per-draw loss gradients (torchattacks EOTPGD).
  Draws may be split into passes of at most ``max_rows`` rows to bound memory.
* ``"logits"``: the loss of the mean logits over draws (RAT's C&W, foolbox's
  expectation wrapper).
* ``"ensemble"``: the loss of the averaged softmax, i.e. of the defended
  model's actual predictor (RSE eq. 4), used with log-probabilities as logits.

For a deterministic model the draws are identical, so the attacks run one draw.
"""

import keras
import tensorflow as tf

from keras_rse._validation import check_choice, check_positive_int
from keras_rse.attacks._utils import log_probabilities
from keras_rse.layers.noise_control import noise_layers

ESTIMATORS = {"loss", "logits", "ensemble"}
# A model that cuts the gradient (stop_gradient, non-differentiable rounding) gives zeros,
# so attacks run and the diagnostics can report the masking instead of crashing on None.
_ZERO = tf.UnconnectedGradients.ZERO


def model_callable(model):
    """Returns ``x -> float32 logits`` with batch norm in inference mode."""
    if isinstance(model, keras.Model):
        return lambda x: tf.cast(model(x, training=False), tf.float32)
    if callable(model):
        return lambda x: tf.cast(model(x), tf.float32)
    raise ValueError(
        f"Invalid value for argument `model`. Expected a keras.Model or a callable "
        f"mapping images to logits. Received: model={model!r}")


def is_randomized(model):
    """False only for a Keras model that provably has no keras_rse noise layer."""
    if isinstance(model, keras.Model):
        return bool(noise_layers(model))
    return True  # an opaque callable may be random: keep the requested draws


def check_eot(model, eot_samples, estimator):
    """Validates the EOT arguments; returns the number of draws to use."""
    eot_samples = check_positive_int("eot_samples", eot_samples)
    check_choice("estimator", estimator, ESTIMATORS)
    return eot_samples if is_randomized(model) else 1


def _draw_logits(model_fn, x, draws):
    """Logits of ``draws`` noise draws of the batch: shape (draws, batch, classes)."""
    batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
    logits = model_fn(tf.tile(x, [draws, 1, 1, 1]))
    return tf.reshape(logits, [draws, batch, -1])


def expected_logits(model_fn, x, draws, estimator):
    """The logits an estimator optimises: per draw, or averaged over draws.

    Returns:
        ``(draws, batch, classes)`` for ``"loss"`` (the loss is averaged after
        it is applied); ``(1, batch, classes)`` for ``"logits"`` (mean logits)
        and ``"ensemble"`` (log of the mean softmax).
    """
    logits = _draw_logits(model_fn, x, draws)
    if estimator == "logits":
        return tf.reduce_mean(logits, axis=0, keepdims=True)
    if estimator == "ensemble":
        probs = tf.reduce_mean(tf.nn.softmax(logits), axis=0, keepdims=True)
        return log_probabilities(probs)
    return logits


def objective_and_probabilities(model_fn, x, labels, loss_fn, draws, estimator):
    """The EOT objective (batch,) and the mean softmax of the same draws (batch, classes)."""
    logits = expected_logits(model_fn, x, draws, estimator)
    # Loss functions act on the last axis, so all draws are scored in one call.
    per_draw = loss_fn(logits, tf.broadcast_to(labels, tf.shape(logits)[:2]))
    return tf.reduce_mean(per_draw, axis=0), tf.reduce_mean(tf.nn.softmax(logits), axis=0)


def eot_objective(model_fn, x, labels, loss_fn, draws, estimator):
    """Per-example objective estimated over ``draws`` draws, shape (batch,)."""
    return objective_and_probabilities(model_fn, x, labels, loss_fn, draws, estimator)[0]


def eot_gradient(model_fn, x, labels, loss_fn, draws, estimator, max_rows=None,
                 return_probabilities=False, num_classes=None):
    """Gradient of the EOT objective w.r.t. ``x`` and the objective itself.

    With the ``"loss"`` estimator and ``draws * batch > max_rows`` the draws
    are split into passes (the gradient is linear in the per-draw losses, so
    summing chunk gradients is exact); the other estimators need all draws in
    one pass, since their loss is taken after the average.

    Args:
        return_probabilities: Also return the softmax averaged over the same
            draws (for ``"logits"``: the softmax of the mean logits), which
            lets an attack track success without another forward pass.
        num_classes: Number of classes; sizes the probability accumulator of
            the chunked path (else one image's logits are computed for it:
            pass it from a loop, which would pay that forward every step).

    Returns:
        ``(gradient, objective)``: same shape as ``x``, and (batch,); with
        ``return_probabilities``, ``(gradient, objective, probabilities)``.
    """
    if estimator != "loss" or max_rows is None:
        with tf.GradientTape() as tape:
            tape.watch(x)
            objective, probs = objective_and_probabilities(model_fn, x, labels, loss_fn,
                                                            draws, estimator)
            total = tf.reduce_sum(objective)  # inside the tape, or the gradient is None
        grad = tape.gradient(total, x, unconnected_gradients=_ZERO)
        return (grad, objective, probs) if return_probabilities else (grad, objective)

    batch = tf.shape(x)[0]
    per_pass = tf.clip_by_value(max_rows // tf.maximum(batch, 1), 1, draws)

    def one_pass(done, grad, total, probs_total):
        chunk = tf.minimum(per_pass, draws - done)
        weight = tf.cast(chunk, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            part, probs = objective_and_probabilities(model_fn, x, labels, loss_fn, chunk,
                                                       "loss")
            part_total = tf.reduce_sum(part * weight)
        if return_probabilities:
            probs_total += probs * weight
        return (done + chunk, grad + tape.gradient(part_total, x, unconnected_gradients=_ZERO),
                total + part * weight, probs_total)

    classes = 0
    if return_probabilities:
        classes = num_classes or model_fn(x[:1]).shape[-1]
    _, grad, total, probs_total = tf.while_loop(
        lambda done, *_: done < draws, one_pass,
        (tf.constant(0), tf.zeros_like(x), tf.zeros_like(labels, tf.float32),
         tf.zeros([batch, classes], tf.float32)))
    grad, objective = grad / float(draws), total / float(draws)
    if return_probabilities:
        return grad, objective, probs_total / float(draws)
    return grad, objective


def eot_predictions(model_fn, x, draws):
    """Class predicted by the softmax averaged over ``draws`` draws, shape (batch,)."""
    probs = tf.reduce_mean(tf.nn.softmax(_draw_logits(model_fn, x, draws)), axis=0)
    return tf.argmax(probs, axis=-1, output_type=tf.int32)
