"""The training loop's callbacks: step-exact checkpoints, progress lines, weight averaging."""

import time

import keras
import tensorflow as tf

from keras_rse.layers.noise_control import random_generator_states


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves model, optimiser and the run's position: every epoch and every ``every_steps``.

    The position is the number of finished epochs and the steps finished in
    the next one, so a killed run resumes at its last saved step (the data
    pipeline replays the same batches, see `keras_rse.data.make_train_dataset`)
    instead of losing a whole epoch - on a CPU one epoch can take an hour.
    Saving on a step count, not on a clock, keeps every worker of a
    multi-worker run saving at the same step. TensorFlow checkpoints write
    their data files first and the small index file (``checkpoint``) last with
    a rename, so a run killed at any moment leaves the previous checkpoint
    intact.

    Args:
        directory: Where checkpoints are written.
        model: The model (its optimiser is saved with it).
        steps_per_epoch: Steps in one epoch.
        every_steps: Also save after every this many steps within an epoch
            (0: at the end of epochs only).
        max_to_keep: Checkpoints kept.
        restore_directory: Where to restore from (default ``directory``).
        extra_state: Further trackables saved with the run, by name (`WeightAverage`'s
            ``state``); restored when the checkpoint has them.
    """

    def __init__(self, directory, model, steps_per_epoch, every_steps=0, max_to_keep=2,
                 restore_directory=None, extra_state=None):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.every_steps = every_steps
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        # The states of the model's random generators (noise layers, attack
        # starts): Keras leaves them out of the model's checkpoint, and a resumed
        # run would otherwise replay the noise draws of the run's first steps.
        rng_states = random_generator_states(model)
        extra_state = dict(extra_state or {})
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                              epoch=self.epoch, step=self.step,
                                              rng=rng_states, **extra_state)
        # Checkpoints written before mid-epoch saves existed have neither `step`
        # nor `rng`: the strict read covers model, optimiser and epoch, and the
        # two newer entries are read when present.
        self._core = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                         epoch=self.epoch)
        self._extras = tf.train.Checkpoint(step=self.step, rng=rng_states, **extra_state)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep)
        # Under MultiWorkerMirroredStrategy every worker must save (saving may run
        # collectives), but only the chief's directory is the real one: the others
        # write to a scratch directory and resume from the chief's.
        self.restore_directory = restore_directory or directory
        self.current_epoch, self.first_step = 0, 0

    def restore(self):
        """Restores the latest checkpoint.

        Returns:
            ``(epochs, steps)``: finished epochs and finished steps of the next one.
        """
        latest = tf.train.latest_checkpoint(self.restore_directory)
        if latest is None:
            return 0, 0
        self._core.read(latest).assert_existing_objects_matched().expect_partial()
        self.step.assign(0)
        self._extras.read(latest).expect_partial()
        return int(self.epoch.numpy()), int(self.step.numpy())

    @staticmethod
    def progress(directory):
        """Reads where the latest checkpoint in ``directory`` stands, without a model.

        Args:
            directory: A checkpoint directory (need not exist).

        Returns:
            ``(epochs, steps)`` as `restore` would return them; ``(0, 0)`` without
            a checkpoint.
        """
        latest = tf.train.latest_checkpoint(directory)
        if latest is None:
            return 0, 0
        reader = tf.train.load_checkpoint(latest)
        present = reader.get_variable_to_shape_map()
        epoch, step = ("epoch/.ATTRIBUTES/VARIABLE_VALUE", "step/.ATTRIBUTES/VARIABLE_VALUE")
        return (int(reader.get_tensor(epoch)),
                int(reader.get_tensor(step)) if step in present else 0)

    def _save(self, epoch, step):
        self.epoch.assign(epoch)
        self.step.assign(step)
        # Numbered by steps since the start, so the numbers only ever grow.
        self.manager.save(checkpoint_number=epoch * self.steps_per_epoch + step)

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        done = self.first_step + batch + 1
        if self.every_steps and done % self.every_steps == 0 and done < self.steps_per_epoch:
            self._save(self.current_epoch, done)

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch + 1, 0)


class WeightAverage(keras.callbacks.Callback):
    """Stochastic weight averaging (Izmailov et al., 2018): the mean of epoch-end weights.

    From the end of epoch ``first_epoch`` (1-based, as ``--epochs``) on, the
    trainable weights at every epoch's end join an equally weighted running
    mean, kept in float32 whatever the variables' dtype. The mean and its count
    live in ``state``, which `TrainingCheckpoint` saves with the run (this
    callback must run before the checkpoint's save at an epoch's end), so a
    resumed run continues the same mean.

    Args:
        variables: The variables to average (a network's trainable weights).
        first_epoch: The first epoch (1-based) whose final weights are averaged.
        directory: The checkpoint directory, named in errors.
    """

    # Where `state.count` lies in a checkpoint written by `TrainingCheckpoint`.
    COUNT_KEY = "weight_average/count/.ATTRIBUTES/VARIABLE_VALUE"

    def __init__(self, variables, first_epoch, directory=None):
        super().__init__()
        self.first_epoch = int(first_epoch)
        self.directory = directory
        self.sources = list(variables)
        self.state = tf.train.Checkpoint(
            count=tf.Variable(0, dtype=tf.int64, trainable=False),
            means=[tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False)
                   for v in self.sources])

    @property
    def count(self):
        """Epochs averaged so far."""
        return int(self.state.count.numpy())

    @classmethod
    def count_in(cls, directory):
        """Epochs averaged in the latest checkpoint of ``directory`` (0: none, or no average)."""
        latest = tf.train.latest_checkpoint(directory)
        if latest is None:
            return 0
        reader = tf.train.load_checkpoint(latest)
        if cls.COUNT_KEY not in reader.get_variable_to_shape_map():
            return 0
        return int(reader.get_tensor(cls.COUNT_KEY))

    def check_count(self, epochs_done):
        """Refuses a mean that does not cover the epochs ``first_epoch..epochs_done``."""
        check_average_covers(self.first_epoch, epochs_done, self.count, self.directory)

    def on_epoch_begin(self, epoch, logs=None):
        self.check_count(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.first_epoch:
            return
        weight = 1.0 / float(self.count + 1)
        for mean, source in zip(self.state.means, self.sources):
            mean.assign_add((tf.cast(source, tf.float32) - mean) * weight)
        self.state.count.assign_add(1)

    def apply(self, epochs_done):
        """Gives the averaged variables their mean (after `check_count`)."""
        self.check_count(epochs_done)
        for mean, source in zip(self.state.means, self.sources):
            source.assign(tf.cast(mean, source.dtype))


def check_average_covers(first_epoch, epochs_done, count, directory=None,
                         name="average_from_epoch"):
    """Refuses a weight average that does not hold the epochs ``first_epoch..epochs_done``.

    A run started or resumed from a checkpoint written without averaging (or
    with another first epoch) would otherwise publish a mean of other epochs
    than it claims.

    Args:
        first_epoch: The first averaged epoch (1-based) the run asks for.
        epochs_done: Epochs the checkpoint has finished.
        count: Epochs in the checkpoint's average (`WeightAverage.count_in`).
        directory: The checkpoint directory (named in the error).
        name: How the error names ``first_epoch`` (``"--average_from_epoch"`` for the flag).

    Raises:
        ValueError: ``count`` is not ``max(0, epochs_done - first_epoch + 1)``.
    """
    expected = max(0, epochs_done - first_epoch + 1)
    if count == expected:
        return
    held = (f"holds a weight average of {count} epochs" if count
            else "holds no weight average")
    kind = "flag" if name.startswith("--") else "argument"
    raise ValueError(f"Invalid value for {kind} `{name}`. Expected the first averaged epoch of "
                     f"the checkpoint{f' in {directory}' if directory else ''}, which "
                     f"{held} after {epochs_done} epochs ({name.lstrip('-')}={first_epoch} "
                     f"needs {expected}). Received: {name.lstrip('-')}={first_epoch}")


class StepProgress(keras.callbacks.Callback):
    """Prints where a run stands every ``interval`` seconds of an epoch.

    With ``verbose=2`` Keras prints one line per epoch, and an epoch on a
    CPU can take most of an hour (WRN-16-4 RAT in float32 on 2 AVX2 cores:
    42 min; a bfloat16 run there crawled for 35 min without a line before it
    was found 10x slower). This line gives the step, seconds per step, loss and
    the time left.

    Args:
        steps_per_epoch: Steps in one epoch.
        epochs: The run's last epoch.
        interval: Seconds between two lines.
        clock: A function returning seconds (tests pass a fake one).
    """

    def __init__(self, steps_per_epoch, epochs, interval=300.0, clock=time.monotonic):
        super().__init__()
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs
        self.interval, self.clock = interval, clock
        self.epoch, self.epoch_started, self.last_line = 0, clock(), clock()
        self.first_step = 0  # steps of the current epoch done before a mid-epoch resume

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_started = epoch, self.clock()
        self.last_line = self.epoch_started

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if now - self.last_line < self.interval:
            return
        self.last_line = now
        done = self.first_step + batch + 1
        per_step = (now - self.epoch_started) / (batch + 1)
        left = (self.steps_per_epoch - done
                + (self.epochs - self.epoch - 1) * self.steps_per_epoch) * per_step
        loss = f", loss {float(logs['loss']):.4f}" if logs and "loss" in logs else ""
        print(f"epoch {self.epoch + 1}/{self.epochs}, step {done}/{self.steps_per_epoch}: "
              f"{per_step:.2f} s/step{loss}; about {left / 60:.0f} min of training left "
              f"(validation not counted)", flush=True)


class RunProgbar(keras.callbacks.ProgbarLogger):
    """Keras's progress printer, counting epochs out of the whole run.

    A resumed, partly done epoch is a fit call of its own (see `training.train`),
    which Keras's own printer would head "Epoch 17/17"; this one says "Epoch 17/100".

    Args:
        epochs: The run's number of epochs.
    """

    def __init__(self, epochs):
        super().__init__()
        self.run_epochs = epochs

    def set_params(self, params):
        super().set_params(dict(params, epochs=self.run_epochs))
