"""Sanity checks run with every report (after AutoAttack and Carlini et al., 2019).

A randomized defense that looks robust because its gradients are useless, its
noise is off, or its attack was too weak is the field's classic failure.
Each check returns ``{"name", "status": "pass" | "fail" | "skipped", "detail",
"values"}``; a report lists them all, and a failed check is printed loudly.

Checks: the noise is really on (repeated passes differ); input gradients are
non-zero; an unbounded attack reaches ~0 %; more PGD steps and more EOT
samples are never weaker; a transfer attack from a surrogate (default: the
same network with its noise switched off) is no stronger than the white-box
attack. The last three compare two attacks on the same images, judged on the
examples they disagree on (beyond sampling error, `stronger_is_weaker`), with
one clean verdict per image shared by both.
"""

import math

import numpy as np
import tensorflow as tf

from keras_rse.attacks import pgd
from keras_rse.attacks._eot import eot_gradient, model_callable
from keras_rse.attacks._utils import signed_margin
from keras_rse.eval import _resume
from keras_rse.layers.noise_control import noise_layers, noise_scale

UNBOUNDED_MAX_ACCURACY = 0.05
ZERO_GRADIENT_MAX_FRACTION = 0.05
# How "stronger is never weaker" is judged (see `stronger_is_weaker`); part of the cache key.
PAIRED_RULE = "paired discordance, McNemar 1.96 sd + 1, one clean verdict"


def _result(name, passed, detail, **values):
    status = "skipped" if passed is None else ("pass" if passed else "fail")
    return {"name": name, "status": status, "detail": detail, "values": values}


def stronger_is_weaker(robust_weaker, robust_stronger):
    """Whether the attack expected to be stronger left more examples robust, beyond chance.

    Both attacks ran on the same images, so their outcomes are paired: only the
    discordant examples carry information. With ``b`` examples robust only under
    the stronger attack and ``c`` only under the weaker one, "no weaker" means
    ``b <= c`` in expectation, and ``b - c`` has a standard deviation of at most
    ``sqrt(b + c)`` (McNemar). The stronger attack counts as weaker when
    ``b - c > 1.96 sqrt(b + c) + 1``. A randomized model's verdicts add
    discordance in both directions, which widens the allowance by itself; an
    unpaired comparison of the two accuracies (two binomial standard errors)
    would allow 6 to 12 of 64 examples (accuracy 5 % to 50 %) whatever the
    attacks did.

    Args:
        robust_weaker: Per-example booleans, robust under the weaker attack.
        robust_stronger: The same for the stronger attack.

    Returns:
        ``(weaker, values)``: the verdict and ``{"only_stronger_robust": b,
        "only_weaker_robust": c, "allowed_excess": ...}``.
    """
    robust_weaker = np.asarray(robust_weaker, bool)
    robust_stronger = np.asarray(robust_stronger, bool)
    if robust_weaker.shape != robust_stronger.shape:
        raise ValueError(f"robust_weaker and robust_stronger must have the same shape, got "
                         f"{robust_weaker.shape} and {robust_stronger.shape}")
    only_stronger = int(np.sum(robust_stronger & ~robust_weaker))
    only_weaker = int(np.sum(robust_weaker & ~robust_stronger))
    allowed = 1.96 * math.sqrt(only_stronger + only_weaker) + 1.0
    return only_stronger - only_weaker > allowed, {
        "only_stronger_robust": only_stronger, "only_weaker_robust": only_weaker,
        "allowed_excess": round(allowed, 2)}


def _paired_detail(values, stronger, weaker):
    return (f"{values['only_stronger_robust']} examples robust only under {stronger}, "
            f"{values['only_weaker_robust']} only under {weaker}; allowed excess "
            f"{values['allowed_excess']:.1f}")


def predicted_classes(model, x, batch_size=128):
    """Classes the defended model predicts (its self-ensemble for a `SelfEnsemble`)."""
    return np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=1)


def robust_examples(model, x, x_adv, y, batch_size=128, clean=None):
    """Per example: correct on the clean image and on its adversarial version.

    Args:
        clean: Per-example booleans, correct on the clean image; None predicts
            them here. Checks that compare two attacks pass one verdict to
            both: on a randomized model two clean verdicts differ on images
            near the boundary, which would add discordance neither attack caused.
    """
    if clean is None:
        clean = predicted_classes(model, x, batch_size) == y
    adversarial = predicted_classes(model, np.asarray(x_adv), batch_size) == y
    return np.asarray(clean, bool) & adversarial


def robust_accuracy(model, x, x_adv, y, batch_size=128):
    """Fraction correct on the clean image and on its adversarial version."""
    return float(np.mean(robust_examples(model, x, x_adv, y, batch_size)))


def check_noise_active(model, x):
    """Two passes on the same images must differ if the model has noise layers."""
    if not noise_layers(model):
        return _result("noise_active", None, "deterministic model (no noise layers)")
    first = np.asarray(model(x, training=False))
    second = np.asarray(model(x, training=False))
    difference = float(np.max(np.abs(first - second)))
    return _result("noise_active", difference > 1e-6,
                   f"max |logits_1 - logits_2| over two passes = {difference:.3g}",
                   max_logit_difference=difference)


def check_gradients_nonzero(model, x, y, eot_samples):
    """Input gradients of the logit margin (never saturates, unlike softmax CE)."""
    model_fn = model_callable(model)
    draws = eot_samples if noise_layers(model) else 1

    def margin_loss(logits, labels):
        return signed_margin(logits, labels, -1.0)

    grad, _ = eot_gradient(model_fn, tf.constant(x), tf.constant(y, tf.int32), margin_loss,
                           draws, "loss")
    norms = np.sqrt(np.sum(np.square(np.asarray(grad).reshape(len(x), -1)), axis=1))
    zero_fraction = float(np.mean(norms < 1e-12))
    return _result("gradients_nonzero", zero_fraction <= ZERO_GRADIENT_MAX_FRACTION,
                   f"{zero_fraction:.1%} of examples have a zero input gradient "
                   f"(allowed <= {ZERO_GRADIENT_MAX_FRACTION:.0%}); median norm "
                   f"{float(np.median(norms)):.3g}",
                   zero_gradient_fraction=zero_fraction, median_gradient_norm=float(
                       np.median(norms)))


def check_unbounded_attack(model, x, y, eot_samples, seed=0):
    """PGD with eps = 1 (any image allowed) must reach ~0 % accuracy."""
    result = pgd(model, x, y, eps=1.0, steps=20, step_size=0.1, eot_samples=eot_samples,
                 seed=seed)
    accuracy = robust_accuracy(model, x, result.x_adv, y)
    return _result("unbounded_attack", accuracy <= UNBOUNDED_MAX_ACCURACY,
                   f"PGD-20 Linf eps=1 leaves {accuracy:.1%} accuracy "
                   f"(expected <= {UNBOUNDED_MAX_ACCURACY:.0%})", accuracy=accuracy)


def check_more_steps(model, x, y, eps, eot_samples, steps=(5, 20), seed=0):
    """PGD with more steps must not leave more accuracy than with fewer."""
    clean, robust = predicted_classes(model, x) == y, []
    for count in steps:
        result = pgd(model, x, y, eps=eps, steps=count, step_size=2.5 * eps / count,
                     eot_samples=eot_samples, seed=seed)
        robust.append(robust_examples(model, x, result.x_adv, y, clean=clean))
    accuracies = [float(np.mean(r)) for r in robust]
    weaker, paired = stronger_is_weaker(robust[0], robust[1])
    return _result("more_steps_not_weaker", not weaker,
                   f"PGD Linf eps={eps:.4g}: {steps[0]} steps -> {accuracies[0]:.1%}, "
                   f"{steps[1]} steps -> {accuracies[1]:.1%} ("
                   f"{_paired_detail(paired, f'{steps[1]} steps', f'{steps[0]} steps')})",
                   steps=list(steps), accuracy=accuracies, **paired)


def check_more_eot(model, x, y, eps, eot_samples, seed=0):
    """More EOT samples must not leave more accuracy (randomized models only)."""
    if not noise_layers(model):
        return _result("more_eot_not_weaker", None, "deterministic model")
    fewer = max(1, eot_samples // 4)
    if fewer == eot_samples:
        return _result("more_eot_not_weaker", None,
                       f"eot_samples={eot_samples}: nothing smaller to compare with")
    clean, robust = predicted_classes(model, x) == y, []
    for draws in (fewer, eot_samples):
        result = pgd(model, x, y, eps=eps, steps=10, eot_samples=draws, seed=seed)
        robust.append(robust_examples(model, x, result.x_adv, y, clean=clean))
    accuracies = [float(np.mean(r)) for r in robust]
    weaker, paired = stronger_is_weaker(robust[0], robust[1])
    return _result("more_eot_not_weaker", not weaker,
                   f"PGD-10 eps={eps:.4g}: EOT {fewer} -> {accuracies[0]:.1%}, EOT "
                   f"{eot_samples} -> {accuracies[1]:.1%} ("
                   f"{_paired_detail(paired, f'EOT {eot_samples}', f'EOT {fewer}')})",
                   eot_samples=[fewer, eot_samples], accuracy=accuracies, **paired)


def check_transfer(model, x, y, eps, eot_samples, surrogate=None, seed=0):
    """A transfer attack must not beat the white-box attack.

    The surrogate defaults to the model itself with its noise switched off
    (a deterministic stand-in an attacker could use); a surrogate that beats
    the white-box EOT attack means the white-box gradients are masked.
    """
    if surrogate is None and not noise_layers(model):
        return _result("transfer_weaker", None, "deterministic model and no surrogate given")
    clean = predicted_classes(model, x) == y
    white = pgd(model, x, y, eps=eps, steps=10, eot_samples=eot_samples, seed=seed)
    white_robust = robust_examples(model, x, white.x_adv, y, clean=clean)
    if surrogate is None:
        with noise_scale(model, 0.0):
            transfer = pgd(model, x, y, eps=eps, steps=10, seed=seed)
        source = "the same network with noise off"
    else:
        transfer = pgd(surrogate, x, y, eps=eps, steps=10, seed=seed)
        source = f"surrogate {surrogate.name!r}"
    transfer_robust = robust_examples(model, x, transfer.x_adv, y, clean=clean)
    white_accuracy, transfer_accuracy = map(float, map(np.mean, (white_robust, transfer_robust)))
    # The white-box attack is the one expected to be stronger.
    weaker, paired = stronger_is_weaker(transfer_robust, white_robust)
    return _result("transfer_weaker", not weaker,
                   f"PGD-10 eps={eps:.4g}: white-box -> {white_accuracy:.1%}, transfer from "
                   f"{source} -> {transfer_accuracy:.1%} ("
                   f"{_paired_detail(paired, 'white-box', 'transfer')})",
                   white_box_accuracy=white_accuracy, transfer_accuracy=transfer_accuracy,
                   **paired)


def run_all(model, x, y, *, eps=8 / 255, eot_samples=10, surrogate=None, seed=0, cache=None):
    """Runs every check on ``(x, y)``; returns the list of results.

    Args:
        cache: Optional `keras_rse.eval._resume.ResumeCache`: finished checks
            are read back instead of rerun.
    """
    y = np.asarray(y, np.int32)
    checks = [
        ("noise_active", lambda: check_noise_active(model, x)),
        ("gradients_nonzero", lambda: check_gradients_nonzero(model, x, y, eot_samples)),
        ("unbounded_attack", lambda: check_unbounded_attack(model, x, y, eot_samples, seed)),
        ("more_steps_not_weaker",
         lambda: check_more_steps(model, x, y, eps, eot_samples, seed=seed)),
        ("more_eot_not_weaker", lambda: check_more_eot(model, x, y, eps, eot_samples, seed)),
        ("transfer_weaker",
         lambda: check_transfer(model, x, y, eps, eot_samples, surrogate, seed)),
    ]
    if cache is None:
        return [run() for _, run in checks]
    # "rule" keeps checks judged by an earlier rule (unpaired accuracies; then paired
    # outcomes with a clean verdict per attack) out of new reports.
    payload = {"x": _resume.array_digest(x, y), "eps": eps, "eot_samples": eot_samples,
               "rule": PAIRED_RULE,
               "seed": seed, "surrogate": None if surrogate is None
               else _resume.model_fingerprint(surrogate)}
    return [cache.get_or_compute("diagnostic", dict(payload, check=name), run,
                                 label=f"diagnostic {name}") for name, run in checks]
