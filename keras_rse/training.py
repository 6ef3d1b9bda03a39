"""Training loop pieces: recipes, optimiser, resume, artifacts (callbacks in `_train_callbacks`)."""

import importlib.util
import json
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from keras_rse import data as rse_data
from keras_rse._io import atomic_save, atomic_write_text, sha256_of  # noqa: F401 (re-exported)
from keras_rse._train_callbacks import (RunProgbar, StepProgress, TrainingCheckpoint,
                                        WeightAverage)
from keras_rse.layers.noise_control import give_replicas_their_own_streams

# Learning-rate recipes: boundaries as fractions of all training steps.
#   rse: SGD 0.1, momentum 0.9, weight decay 5e-4 (the RSE code's optimiser), batch 128;
#        x0.1 at 50% and 75% is this package's choice for short runs (the RSE code trains
#        200 epochs in blocks of 80 / 60 / 40 / 20, i.e. x0.1 at 40%, 70% and 90%).
#   rse_code: the RSE code's own schedule, its four blocks as fractions: x0.1 at 40%, 70%
#        and 90% (the 200 epochs of 80 / 60 / 40 / 20), the rse optimiser otherwise. Unlike
#        the code, one optimiser runs throughout (the code starts a new one, momentum reset,
#        at each block, from the block's best epoch on the test set: this package never
#        selects on the test set).
#   rat: 0.1 -> 0.02 -> 0.004 -> 8e-5 after 7500 / 15000 / 20000 of the paper's
#        200 epochs x 250 steps (= 15% / 30% / 40%); weight decay 2e-3, batch 200.
RECIPES = {
    "rse": {"learning_rate": 0.1, "boundaries": (0.5, 0.75), "factors": (1.0, 0.1, 0.01),
            "weight_decay": 5e-4, "momentum": 0.9, "batch_size": 128},
    "rse_code": {"learning_rate": 0.1, "boundaries": (0.4, 0.7, 0.9),
                 "factors": (1.0, 0.1, 0.01, 0.001), "weight_decay": 5e-4, "momentum": 0.9,
                 "batch_size": 128},
    "rat": {"learning_rate": 0.1, "boundaries": (0.15, 0.30, 0.40),
            "factors": (1.0, 0.2, 0.04, 0.0008), "weight_decay": 2e-3, "momentum": 0.9,
            "batch_size": 200},
}


@keras.saving.register_keras_serializable(package="keras_rse")
class WarmupPiecewiseConstant(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to the first value, then piecewise-constant decay.

    Measured here: full VGG16 with SGD (momentum 0.9) at a constant lr of 0.05
    or 0.1 from step 0 stayed at chance (10.4 % train accuracy after 120 steps,
    mean loss 3.4), while lr 0.01 reached 33 %. Warming up keeps the papers'
    peak learning rate without that early divergence.

    Args:
        warmup_steps: Steps of the linear ramp from ``values[0] / warmup_steps``.
        boundaries: Step boundaries of the piecewise-constant part.
        values: ``len(boundaries) + 1`` learning rates.
    """

    def __init__(self, warmup_steps, boundaries, values):
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.values = [float(v) for v in values]
        self._piecewise = keras.optimizers.schedules.PiecewiseConstantDecay(
            self.boundaries, self.values)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        ramp = self.values[0] * (step + 1.0) / max(self.warmup_steps, 1)
        return tf.where(step < self.warmup_steps, ramp, self._piecewise(step))

    def get_config(self):
        return {"warmup_steps": self.warmup_steps, "boundaries": self.boundaries,
                "values": self.values}


WEIGHT_DECAY_STYLES = ("coupled", "decoupled")


@keras.saving.register_keras_serializable(package="keras_rse")
class CoupledWeightDecaySGD(keras.optimizers.SGD):
    """SGD with the papers' (PyTorch's) weight decay: ``l2 * w`` joins the gradient.

    The papers' code trains with ``torch.optim.SGD(momentum=0.9, weight_decay=wd)``,
    which adds ``wd * w`` to the gradient before the momentum (the updates are equal
    at a constant learning rate; Keras's velocity carries the previous rate for ~10
    steps after a change, torch's buffer does not, in both styles alike). Keras's
    ``SGD(weight_decay=wd)`` instead shrinks ``w -= lr * wd * w`` outside the
    momentum: under momentum 0.9 that is about 10x weaker at the same ``wd``
    (the momentum sums the coupled term over ~1 / (1 - 0.9) steps).

    Args:
        learning_rate: A float or a schedule.
        momentum: SGD momentum.
        l2: The coupled weight decay ``wd``.
        **kwargs: `keras.optimizers.SGD` arguments (``weight_decay`` must stay
            None: it would add Keras's decoupled decay on top).

    Variables left out with ``exclude_from_weight_decay`` are, as for every Keras
    optimizer, not part of ``get_config()``: an optimizer rebuilt from its config
    decays every variable until the exclusion is applied again (`make_optimizer`
    applies it on every start and resume of fit, and fit's saved models carry no
    optimizer).
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, *, l2=0.0, **kwargs):
        if kwargs.get("weight_decay") is not None:
            raise ValueError(f"Invalid combination: CoupledWeightDecaySGD applies `l2` itself; "
                             f"`weight_decay` would add Keras's decoupled decay as well. "
                             f"Received: weight_decay={kwargs['weight_decay']!r}, l2={l2!r}")
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        # `_use_weight_decay` honours `exclude_from_weight_decay` (Keras's own lists).
        if self.l2 and self._use_weight_decay(variable):
            gradient = keras.ops.add(keras.ops.cast(gradient, variable.dtype),
                                     keras.ops.multiply(variable, self.l2))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return dict(super().get_config(), l2=self.l2)


def checked_decay_at(recipe, decay_at, name="decay_at"):
    """The decay fractions of ``recipe``, or ``decay_at`` checked (refused by ``name``)."""
    spec = RECIPES[recipe]
    fractions = spec["boundaries"] if decay_at is None else tuple(decay_at)
    if (len(fractions) != len(spec["boundaries"]) or not all(0 < f < 1 for f in fractions)
            or list(fractions) != sorted(set(fractions))):
        raise ValueError(f"Invalid value for argument `{name}`. Expected "
                         f"{len(spec['boundaries'])} increasing fractions in (0, 1) for recipe "
                         f"{recipe!r}. Received: {name.lstrip('-')}={decay_at!r}")
    return fractions


def make_optimizer(recipe, total_steps, learning_rate=None, weight_decay=None, decay_at=None,
                   weight_decay_style="coupled", no_decay_variables=()):
    """SGD with momentum: a warm-up over 2 % of the steps, then the recipe's decay.

    Args:
        recipe: A key of ``RECIPES``.
        total_steps: Optimiser steps of the whole run.
        learning_rate: Override of the recipe's initial learning rate (> 0).
        weight_decay: Override of the recipe's weight decay (>= 0).
        decay_at: Override of the recipe's decay points, as increasing fractions of
            ``total_steps`` in (0, 1), one per decay of the recipe. A shortened run
            uses it to keep most steps at a useful learning rate (the RAT recipe
            spends the last 60 % of its steps at 8e-5).
        weight_decay_style: ``"coupled"`` (the papers' PyTorch SGD: ``wd * w``
            added to the gradient, `CoupledWeightDecaySGD`) or ``"decoupled"``
            (Keras's SGD: ``w -= lr * wd * w``, about 10x weaker under momentum
            0.9; every run before 2026-12-07 used it).
        no_decay_variables: Variables the coupled decay leaves alone (LeRAT's
            learned noise scales, which weight decay would pull towards no noise).
            Ignored by the decoupled style, which decays every variable as before.

    Returns:
        A `keras.optimizers.SGD` (a `CoupledWeightDecaySGD` for the coupled style).
    """
    spec = RECIPES[recipe]
    base = spec["learning_rate"] if learning_rate is None else learning_rate
    decay = spec["weight_decay"] if weight_decay is None else weight_decay
    if not base > 0:
        raise ValueError(f"Invalid value for argument `learning_rate`. Expected a number > 0. "
                         f"Received: learning_rate={learning_rate!r}")
    if not decay >= 0:
        raise ValueError(f"Invalid value for argument `weight_decay`. Expected a number >= 0. "
                         f"Received: weight_decay={weight_decay!r}")
    if weight_decay_style not in WEIGHT_DECAY_STYLES:
        raise ValueError(f"Invalid value for argument `weight_decay_style`. Expected one of "
                         f"{WEIGHT_DECAY_STYLES}. Received: "
                         f"weight_decay_style={weight_decay_style!r}")
    fractions = checked_decay_at(recipe, decay_at)
    boundaries = [max(1, int(f * total_steps)) for f in fractions]
    schedule = WarmupPiecewiseConstant(
        max(1, int(0.02 * total_steps)), boundaries, [base * f for f in spec["factors"]])
    if weight_decay_style == "decoupled":
        return keras.optimizers.SGD(schedule, momentum=spec["momentum"], weight_decay=decay)
    optimizer = CoupledWeightDecaySGD(schedule, momentum=spec["momentum"], l2=decay)
    if no_decay_variables:
        optimizer.exclude_from_weight_decay(var_list=list(no_decay_variables))
    return optimizer


def ensemble_accuracy(model, x, y, ensemble_size, batch_size=256):
    """Accuracy of the self-ensemble of ``ensemble_size`` draws."""
    previous = model.ensemble_size
    model.ensemble_size = ensemble_size
    try:
        probs = model.predict(x, batch_size=batch_size, verbose=0)
    finally:
        model.ensemble_size = previous
    return float(np.mean(np.argmax(probs, axis=1) == y))


def single_pass_accuracy(model, x, y, batch_size=256):
    """Accuracy of one noisy pass (logits of one random member)."""
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size], training=False)
        correct += int(np.sum(np.argmax(logits, axis=1) == y[start:start + batch_size]))
    return correct / len(x)


def train(model, x_train, y_train, x_val, y_val, *, workdir, epochs, batch_size, seed,
          augmentation=True, verbose=1, chief=True, task="chief", progress_every=300.0,
          checkpoint_every=0, callbacks=(), average_from_epoch=None):
    """Fits ``model`` for ``epochs``, resuming from ``workdir``'s checkpoint if any.

    Writes ``checkpoints/``, ``log.csv`` and ``tensorboard/`` into ``workdir``.
    With ``verbose=2`` (one line per epoch) the chief also prints a progress
    line every ``progress_every`` seconds (`StepProgress`).
    A non-chief worker of a multi-worker run (``chief=False``) checkpoints
    into ``workdir/.scratch_<task>`` (removed at the end), writes no logs,
    and resumes from the chief's checkpoints.

    Args:
        model: A compiled defense model.
        x_train, y_train, x_val, y_val: Training and validation arrays.
        workdir: The run's directory; the same directory resumes the run.
        epochs: The run's last epoch.
        batch_size: Global batch size.
        seed: Seed of the data order and augmentation.
        augmentation: Random crop and flip.
        verbose: Keras verbosity (2: one line per epoch plus progress lines).
        chief: Whether this worker writes the run's files.
        task: This worker's label (names its scratch directory).
        progress_every: Seconds between progress lines (``verbose=2``).
        checkpoint_every: Also checkpoint every this many steps within an
            epoch (0: at the end of epochs only).
        callbacks: Further Keras callbacks.
        average_from_epoch: Stochastic weight averaging (`WeightAverage`): the
            network's trainable weights at the ends of epochs ``average_from_epoch``
            (1-based) to ``epochs`` are averaged, and the model ends with that mean
            and batch-norm statistics recomputed for it on ``x_train``
            (`recompute_batch_norm_statistics`). None: the last epoch's weights.
            Refused for a defense that trains on transformed images (adversarial
            training, Gaussian augmentation: ``trains_on_given_images`` False).

    Returns:
        ``(epochs_done, steps_done, seconds)``: the finished epochs and the
        finished steps of the next epoch before this call, and this call's
        wall time.
    """
    chief_directory = os.path.join(workdir, "checkpoints")
    average = _weight_average(model, epochs, average_from_epoch, chief_directory)
    os.makedirs(workdir, exist_ok=True)
    steps_per_epoch = -(-len(x_train) // batch_size)
    scratch = None if chief else os.path.join(workdir, f".scratch_{task}")
    checkpoint = TrainingCheckpoint(os.path.join(scratch, "checkpoints") if scratch
                                    else chief_directory, model, steps_per_epoch,
                                    every_steps=checkpoint_every,
                                    restore_directory=chief_directory,
                                    extra_state=average and {"weight_average": average.state})
    resumed_epoch, start_step = checkpoint.restore()
    check_epochs_cover_checkpoint(epochs, resumed_epoch, start_step, chief_directory)
    if chief:  # also a start without a checkpoint: rows of a killed first epoch go
        _drop_log_rows_from(os.path.join(workdir, "log.csv"), resumed_epoch)
    # Under a strategy with several replicas (the one the model was built under),
    # each replica draws its noise from a stream of its own. Done after the
    # restore, which gives every replica the saved (primary) state: the streams
    # follow from it, so a resumed run draws as one never stopped.
    give_replicas_their_own_streams(model, model.distribute_strategy)
    start_epoch = resumed_epoch
    if start_epoch or start_step:
        where = (f" and step {start_step}/{steps_per_epoch} of epoch {start_epoch + 1}"
                 if start_step else "")
        print(f"Resuming from the checkpoint of epoch {start_epoch}{where} in {workdir}",
              flush=True)
    started = time.time()
    if average:
        average.check_count(start_epoch)  # before any step: a mismatch is refused at once
    # The average takes an epoch's weights before the checkpoint saves it.
    saving = [average, checkpoint] if average else [checkpoint]
    if start_epoch < epochs:
        callbacks, progress = _callbacks(workdir, saving, callbacks, chief, verbose,
                                         StepProgress(steps_per_epoch, epochs, progress_every))
        if verbose:
            callbacks = [*callbacks, RunProgbar(epochs)]
        fit_args = dict(validation_data=(x_val, y_val), validation_batch_size=256,
                        callbacks=callbacks, verbose=verbose,
                        shuffle=False)  # the dataset is already shuffled per (seed, epoch)
        data_args = dict(x=x_train, y=y_train, batch_size=batch_size, seed=seed,
                         augmentation=augmentation)
        if start_step:
            # Keras gives every epoch of one fit call the same number of steps, so
            # the rest of a partly done epoch is a fit call of its own.
            for callback in (checkpoint, progress):
                if callback:
                    callback.first_step = start_step
            model.fit(rse_data.make_train_dataset(**data_args, first_epoch=start_epoch,
                                                  last_epoch=start_epoch + 1,
                                                  first_step=start_step),
                      epochs=start_epoch + 1, initial_epoch=start_epoch,
                      steps_per_epoch=steps_per_epoch - start_step, **fit_args)
            for callback in (checkpoint, progress):
                if callback:
                    callback.first_step = 0
            start_epoch += 1
        if start_epoch < epochs:
            model.fit(rse_data.make_train_dataset(**data_args, first_epoch=start_epoch,
                                                  last_epoch=epochs),
                      epochs=epochs, initial_epoch=start_epoch,
                      steps_per_epoch=steps_per_epoch, **fit_args)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    if average:
        average.apply(epochs)
        recompute_batch_norm_statistics(model.network, x_train, batch_size)
    return resumed_epoch, start_step, time.time() - started


def _weight_average(model, epochs, average_from_epoch, directory):
    """The `WeightAverage` of ``model.network`` (None without ``average_from_epoch``)."""
    if average_from_epoch is None:
        return None
    if not 1 <= average_from_epoch <= epochs:
        raise ValueError(f"Invalid value for argument `average_from_epoch`. Expected an epoch "
                         f"in [1, {epochs}] (the run's epochs). Received: "
                         f"average_from_epoch={average_from_epoch!r}")
    if not getattr(model, "trains_on_given_images", True):
        raise ValueError(f"Invalid combination: weight averaging recomputes the batch norms' "
                         f"statistics on the training images, but {type(model).__name__} "
                         f"trains on images it transforms (adversarial or noisy), so the "
                         f"statistics would not match training. Received: average_from_epoch="
                         f"{average_from_epoch} with a {type(model).__name__} model")
    if model.distribute_strategy.num_replicas_in_sync > 1:
        # The batch-norm recomputation calls the network outside strategy.run.
        raise ValueError(f"Invalid combination: weight averaging runs on one replica only. "
                         f"Received: average_from_epoch={average_from_epoch} with "
                         f"{model.distribute_strategy.num_replicas_in_sync} replicas")
    return WeightAverage(model.network.trainable_variables, average_from_epoch, directory)


def recompute_batch_norm_statistics(network, x, batch_size=128):
    """Sets every batch norm's moving statistics to their mean over ``x`` (one pass).

    Averaged weights (`WeightAverage`) never ran through the network during
    training, so the moving statistics of the last steps do not belong to them
    (Izmailov et al., 2018, recompute them with one pass over the training
    data). The pass runs in training mode, with the network's noise on, as the
    statistics were gathered in training; without augmentation, as the test
    images come. ``x`` must be the images training ran on: for a defense that
    trains on adversarial or noise-augmented images, clean ones would give
    other statistics (`train` refuses to average such a defense). Every batch
    counts the same (the last, smaller one too).

    Args:
        network: A Keras model whose `BatchNormalization` layers are updated.
        x: Images, e.g. the training split.
        batch_size: Images per pass (the training batch size gathers the same
            per-batch statistics as training).

    Returns:
        The number of batch-norm layers updated.
    """
    layers = [layer for layer in network._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)]
            for layer in layers]
    # Momentum 0 (read when the function is traced): each pass leaves its batch's own
    # statistics in the moving variables, which are summed here. No AutoGraph: there is no
    # Python control flow to convert, and it warned that it could not parse the lambda.
    forward = tf.function(lambda images: network(images, training=True), autograph=False)
    batches = range(0, len(x), batch_size)
    try:
        for layer in layers:
            layer.momentum = 0.0
        for start in batches:
            forward(x[start:start + batch_size])
            for total, layer in zip(sums, layers):
                total[0] += layer.moving_mean.numpy()
                total[1] += layer.moving_variance.numpy()
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    for (mean, variance), layer in zip(sums, layers):
        layer.moving_mean.assign(mean / len(batches))
        layer.moving_variance.assign(variance / len(batches))
    return len(layers)


def check_epochs_cover_checkpoint(epochs, done_epochs, done_steps, directory, name="epochs"):
    """Refuses a run shorter than what its checkpoint has already trained.

    A shorter run cannot be resumed from the checkpoint: it would export weights
    trained further than the run it claims to be.

    Args:
        epochs: The run's last epoch.
        done_epochs, done_steps: The checkpoint's finished epochs and finished
            steps of the next epoch (`TrainingCheckpoint.progress`).
        directory: The checkpoint directory (named in the error).
        name: How the error names ``epochs`` (``"--epochs"`` for the CLI flag).

    Raises:
        ValueError: ``epochs`` is below ``done_epochs``, or equal to it while
            the checkpoint is already inside the next epoch.
    """
    if done_epochs > epochs or (done_epochs == epochs and done_steps):
        done = (f"more than the {done_epochs} epochs and {done_steps} steps" if done_steps
                else f"at least the {done_epochs} epochs")
        kind = "flag" if name.startswith("--") else "argument"
        raise ValueError(f"Invalid value for {kind} `{name}`. Expected {done} the checkpoint in "
                         f"{directory} has finished (a shorter run cannot be resumed from it). "
                         f"Received: {name.lstrip('-')}={epochs}")


def _drop_log_rows_from(path, epoch):
    """Rewrites ``log.csv`` without the rows of epoch index ``epoch`` onwards (atomic).

    The log is written before the checkpoint at an epoch's end, so a run killed
    between the two has a row for an epoch that its resume trains again (with
    ``epoch`` 0 when the run had no checkpoint yet); a row cut mid-write (no
    newline) goes too.
    """
    if not os.path.isfile(path):
        return
    with open(path) as f:
        lines = f.read().splitlines(keepends=True)

    def kept_row(line):  # a finished row (newline-ended) of an epoch before ``epoch``
        index = line.split(",", 1)[0]
        return line.endswith("\n") and index.isdigit() and int(index) < epoch

    kept = lines[:1] + [line for line in lines[1:] if kept_row(line)]
    if len(kept) < len(lines):
        atomic_write_text(path, "".join(kept))


def _callbacks(workdir, saving, extra, chief, verbose, progress):
    """The callbacks of `train`'s fit calls, and the progress printer in use (or None).

    ``saving`` is the checkpoint, after the weight average when there is one.
    Every worker checkpoints (a non-chief into its scratch folder); only the chief
    logs (CSV, TensorBoard when installed) and prints progress lines (``verbose=2``).
    The CSV row of an epoch is written before its checkpoint: a kill between the
    two repeats the epoch, and `train` drops the row on resume (the other order
    would lose the row for good).
    """
    if not chief:
        return [*saving, *extra], None
    callbacks = [keras.callbacks.CSVLogger(os.path.join(workdir, "log.csv"), append=True),
                 *saving, *extra]
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard")))
    else:
        print("tensorboard is not installed: no TensorBoard logs.", flush=True)
    if verbose != 2:
        return callbacks, None
    return [*callbacks, progress], progress


def save_artifacts(model, workdir, summary):
    """Writes the final model (.keras and .weights.h5) and summary.json atomically.

    The model is saved as a plain `SelfEnsemble` (the defense's train_step is a
    training concern); the summary records the weights' sha256.
    """
    from keras_rse.models import SelfEnsemble

    final = SelfEnsemble(model.network, ensemble_size=model.ensemble_size, name=model.name)
    keras_path = os.path.join(workdir, "model.keras")
    weights_path = os.path.join(workdir, "model.weights.h5")
    atomic_save(final.save, keras_path)
    atomic_save(final.save_weights, weights_path)
    summary = dict(summary, model_sha256=sha256_of(keras_path),
                   weights_sha256=sha256_of(weights_path))
    atomic_write_text(os.path.join(workdir, "summary.json"), json.dumps(summary, indent=2))
    return summary
