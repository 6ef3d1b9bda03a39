"""Auto-PGD (Croce & Hein, 2020): PGD without a step-size choice, CE or DLR loss, EOT.

APGD starts with step ``2 * eps``, adds momentum (0.75), and halves each
example's step at checkpoints where progress stalled: at most 75 % of the
steps since the last checkpoint raised the loss, or the best loss did not
improve and the step was not just halved. After halving it restarts from the
best point found. Checkpoints come at 22 % of the iterations, then at
windows shrinking by 3 % of the iterations down to 6 %. With ``eot_samples``
draws per gradient this is the attack of AutoAttack's ``rand`` version
(APGD-CE and APGD-DLR, EOT 20) for randomized defenses.

Differences from the reference implementation, on purpose:

* Success is tracked with the softmax averaged over the same EOT draws that
  gave the gradient (the reference uses one noisy pass, so a lucky draw
  counts as a success). At the end, fresh draws choose per example between
  the last iterate that fooled the model, the highest-loss iterate and the
  final iterate; the success returned is measured with yet other draws,
  like every attack of this package.
* The random start is uniform in the eps-ball (`random_start`); the
  reference starts on the ball's surface (Linf: ``x + eps t / max|t|`` for a
  uniform t in [-1, 1]^d, so one coordinate at the bound).

On a randomized model the step-size rule compares noisy loss estimates, so
use enough draws, and report APGD beside PGD, not instead of it. Measured
with ``benchmarks/apgd_strength.py`` (the tests' toy CNNs, 200 images;
accuracy left, lower is stronger): deterministic CNN, Linf 4/255, 20
iterations: PGD 0.885, APGD-CE 0.660, APGD-DLR 0.530. Noisy CNN, Linf 3/255,
50 iterations: with EOT 4, PGD 0.740, APGD-CE 0.765, APGD-DLR 0.920; with
EOT 20 (AutoAttack's ``rand`` setting), 0.720, 0.715 and 0.940.
"""

from collections.abc import Callable

import tensorflow as tf

from keras_rse._validation import check_choice, check_positive_int, invalid_argument
from keras_rse.attacks import _eot
from keras_rse.attacks._compile import cached, num_classes_of
from keras_rse.attacks._utils import (
    AttackResult, ModelLike, TensorLike, attack_result, check_eps, check_images_and_labels,
    check_norm, cross_entropy, keep_worst_case, normalized_step, per_example, project, random_start,
    seed_pair, signed_margin)

LOSSES = {"ce", "dlr"}
_MOMENTUM = 0.75
_OSCILLATION_THRESHOLD = 0.75  # rho: share of steps that must raise the loss


def dlr_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Difference of logits ratio: ``-(z_y - max_{i!=y} z_i) / (z_1 - z_3)``.

    ``z_1 >= z_2 >= z_3`` are the sorted logits. Invariant to shifting and
    rescaling the logits, so a model cannot hide behind saturated softmax
    (Croce & Hein, 2020, eq. 3). Positive exactly when ``y`` is not the top
    class. Needs at least 3 classes.

    Args:
        logits: (..., classes) logits.
        labels: (...) integer labels.

    Returns:
        The per-example loss, shape (...).
    """
    top = tf.math.top_k(logits, k=3).values
    return -signed_margin(logits, labels, 1.0) / (top[..., 0] - top[..., 2] + 1e-12)


_LOSS_FUNCTIONS = {"ce": cross_entropy, "dlr": dlr_loss}


def checkpoint_windows(steps):
    """Per iteration, the length of the window that ends there (0: not a checkpoint).

    Returns:
        A list of ``steps`` integers.
    """
    window = max(int(0.22 * steps), 1)
    shrink, smallest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    windows = [0] * steps
    index = window - 1
    while index < steps:
        windows[index] = window
        window = max(window - shrink, smallest)
        index += window
    return windows


def make_apgd(model: ModelLike, *, norm: str = "linf", steps: int = 100, loss: str = "ce",
              restarts: int = 1, eot_samples: int = 1, estimator: str = "loss",
              max_rows: int | None = None, jit_compile: bool = False) -> Callable:
    """Builds (or fetches) the compiled APGD loop ``fn(x, y, eps, seed)``.

    Returns:
        A `tf.function` returning ``(x_adv, success)``.
    """
    model_fn = _eot.model_callable(model)  # validates `model` before it is cached
    norm = check_norm(norm)
    steps = check_positive_int("steps", steps)
    loss = check_choice("loss", loss, LOSSES)
    restarts = check_positive_int("restarts", restarts)
    draws = _eot.check_eot(model, eot_samples, estimator)
    key = ("apgd", norm, steps, loss, restarts, draws, estimator, max_rows, bool(jit_compile))
    return cached(model, key, lambda: _build_apgd(
        model_fn, norm, steps, _LOSS_FUNCTIONS[loss], restarts, draws, estimator, max_rows,
        bool(jit_compile)))


def _build_apgd(model_fn, norm, steps, loss_fn, restarts, draws, estimator, max_rows,
                jit_compile):
    loop = _ApgdLoop(model_fn, norm, steps, loss_fn, restarts, draws, estimator, max_rows)
    return tf.function(loop.run, jit_compile=jit_compile, reduce_retracing=True)


class _ApgdLoop:
    """The parts of one compiled APGD attack, built from the checked settings of `make_apgd`
    (``loss_fn``: the function of its ``loss``)."""

    def __init__(self, model_fn, norm, steps, loss_fn, restarts, draws, estimator, max_rows):
        self.model_fn, self.norm, self.steps, self.loss_fn = model_fn, norm, steps, loss_fn
        self.restarts, self.draws, self.estimator = restarts, draws, estimator
        self.max_rows = max_rows
        self.windows = tf.constant(checkpoint_windows(steps), tf.float32)

    def probe(self, x_adv, y, num_classes):
        """EOT gradient, loss, and whether the same draws' mean softmax misses ``y``."""
        grad, loss, probs = _eot.eot_gradient(self.model_fn, x_adv, y, self.loss_fn, self.draws,
                                              self.estimator, self.max_rows,
                                              return_probabilities=True,
                                              num_classes=num_classes)
        return grad, loss, tf.not_equal(tf.argmax(probs, axis=-1, output_type=tf.int32), y)

    def attack_once(self, x, y, eps, seed):
        """One restart: ``(x_adv, success, loss)`` per example."""
        # Read once per call, so the loop's probes need no forward pass to learn it.
        num_classes = self.model_fn(x[:1]).shape[-1]
        x0 = random_start(x, eps, self.norm, seed)
        grad, loss, missed = self.probe(x0, y, num_classes)
        batch = tf.shape(x)[0]
        state = {
            "x_adv": x0, "x_prev": x0, "grad": grad, "loss": loss,
            "x_best": x0, "grad_best": grad, "loss_best": loss,
            "x_found": x0, "found": missed,
            "step": tf.fill([batch], 2.0 * eps),
            "increases": tf.zeros([batch], tf.float32),
            # True at the start, so the first checkpoint cannot halve for "no improvement".
            "halved_last": tf.ones([batch], tf.bool), "loss_best_last": loss,
        }
        _, s = tf.while_loop(
            lambda i, _: i < self.steps,
            lambda i, s: self.iteration(i, s, x, y, eps, num_classes),
            (tf.constant(0), state))
        # The draws that picked x_found (a miss) and x_best (the highest loss) may have
        # been lucky; judge both, and the last iterate, again with fresh draws.
        x_adv, _, loss = self.select_with_fresh_draws(
            y, [s["x_found"], s["x_best"], s["x_adv"]])
        # The success reported comes from yet other draws, not from those that selected.
        return x_adv, tf.not_equal(_eot.eot_predictions(self.model_fn, x_adv, self.draws),
                                   y), loss

    def iteration(self, i, s, x, y, eps, num_classes):
        """Step ``i`` of Algorithm 1 on the state dict ``s``; returns ``(i + 1, new state)``."""
        momentum = tf.where(i > 0, _MOMENTUM, 1.0)  # the first step has none
        x_adv = s["x_adv"]
        z = project(x_adv + per_example(s["step"]) * normalized_step(s["grad"], self.norm),
                    x, eps, self.norm)
        x_new = project(x_adv + momentum * (z - x_adv) + (1.0 - momentum) * (
            x_adv - s["x_prev"]), x, eps, self.norm)
        grad, loss, missed = self.probe(x_new, y, num_classes)

        increases = s["increases"] + tf.cast(loss > s["loss"], tf.float32)
        improved = loss > s["loss_best"]
        x_best = tf.where(per_example(improved), x_new, s["x_best"])
        grad_best = tf.where(per_example(improved), grad, s["grad_best"])
        loss_best = tf.where(improved, loss, s["loss_best"])

        window = self.windows[i]
        at_checkpoint = window > 0
        oscillating = increases <= _OSCILLATION_THRESHOLD * window
        stalled = ~s["halved_last"] & (s["loss_best_last"] >= loss_best)
        halve = at_checkpoint & (oscillating | stalled)
        return i + 1, {
            "x_adv": tf.where(per_example(halve), x_best, x_new),
            "x_prev": x_adv,
            "grad": tf.where(per_example(halve), grad_best, grad),
            "loss": loss,
            "x_best": x_best, "grad_best": grad_best, "loss_best": loss_best,
            # The latest iterate that fooled the EOT prediction.
            "x_found": tf.where(per_example(missed), x_new, s["x_found"]),
            "found": s["found"] | missed,
            "step": tf.where(halve, s["step"] / 2.0, s["step"]),
            "increases": tf.where(at_checkpoint, 0.0, increases),
            "halved_last": tf.where(at_checkpoint, halve, s["halved_last"]),
            "loss_best_last": tf.where(at_checkpoint, loss_best, s["loss_best_last"]),
        }

    def select_with_fresh_draws(self, y, candidates):
        """Per example, the candidate that fresh draws find misclassified, else the worst loss."""
        best = None
        for x_adv in candidates:
            loss, probs = _eot.objective_and_probabilities(self.model_fn, x_adv, y, self.loss_fn,
                                                            self.draws, self.estimator)
            missed = tf.not_equal(tf.argmax(probs, axis=-1, output_type=tf.int32), y)
            outcome = (x_adv, missed, loss)
            best = outcome if best is None else keep_worst_case(best, outcome)
        return best

    def run(self, x, y, eps, seed):
        """The attack: ``(x_adv, success)``, the worst case over the restarts."""
        best = self.attack_once(x, y, eps, seed)
        for restart in range(1, self.restarts):
            best = keep_worst_case(best, self.attack_once(x, y, eps, seed + [0, 2 * restart]))
        return best[0], best[1]


def apgd(model: ModelLike, x: TensorLike, y: TensorLike, *, eps: float, norm: str = "linf",
         steps: int = 100, loss: str = "ce", restarts: int = 1, eot_samples: int = 1,
         estimator: str = "loss", seed: int | None = None, max_rows: int | None = None,
         jit_compile: bool = False) -> AttackResult:
    """Auto-PGD, untargeted, with the cross-entropy or the DLR loss, and EOT.

    Args:
        model: A Keras model (called with ``training=False``) or a callable
            mapping [0, 1] images to logits.
        x: Images (N, H, W, C) in [0, 1].
        y: Integer true labels (N,).
        eps: Budget in pixel units (Linf or L2 radius), >= 0.
        norm: ``"linf"`` or ``"l2"``.
        steps: Iterations per restart (AutoAttack: 100).
        loss: ``"ce"`` (cross-entropy) or ``"dlr"`` (`dlr_loss`; needs >= 3
            classes).
        restarts: Independent runs; per example the worst case is kept.
        eot_samples: Noise draws per gradient (AutoAttack ``rand``: 20).
        estimator: ``"loss"``, ``"logits"`` or ``"ensemble"`` (see `_eot`).
        seed: Integer seed for the random start; None draws a fresh one.
        max_rows: Bound on rows per forward pass for the ``"loss"`` estimator.
        jit_compile: Compile with XLA (off: slower on CPU).

    Returns:
        An `AttackResult`.

    Reference:
        Croce & Hein, "Reliable evaluation of adversarial robustness with an
        ensemble of diverse parameter-free attacks", ICML 2020, Algorithm 1.
    """
    eps = check_eps("eps", eps)
    fn = make_apgd(model, norm=norm, steps=steps, loss=loss, restarts=restarts,
                   eot_samples=eot_samples, estimator=estimator, max_rows=max_rows,
                   jit_compile=jit_compile)
    num_classes = num_classes_of(model, _eot.model_callable(model), x)
    if loss == "dlr" and num_classes < 3:
        raise invalid_argument("loss", "'ce' for a model with fewer than 3 classes",
                               f"'dlr' with {num_classes} classes")
    x, y = check_images_and_labels(x, y, num_classes)
    x_adv, success = fn(x, y, tf.constant(eps), seed_pair(seed))
    return attack_result(x_adv, success, x)
