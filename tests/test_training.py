"""The optimiser recipes: warm-up, decay points, and the override of a shortened run."""

import keras
import numpy as np
import pytest

from keras_rse import training


def _learning_rates(optimizer, steps):
    """The learning rate the optimiser applies at each of ``steps``."""
    rates = []
    for step in steps:
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    return np.array(rates)


def test_rat_recipe_decays_at_15_30_40_percent():
    optimizer = training.make_optimizer("rat", 1000)
    rates = _learning_rates(optimizer, [100, 149, 151, 299, 301, 399, 401, 999])
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.02, 0.02, 0.004, 0.004, 8e-5, 8e-5],
                               rtol=1e-5)
    assert optimizer.weight_decay == pytest.approx(2e-3)


def test_warmup_ramps_to_the_peak_over_two_percent_of_steps():
    rates = _learning_rates(training.make_optimizer("rse", 1000), [0, 10, 20, 400])
    assert rates[0] < rates[1] < rates[2] == pytest.approx(0.1) and rates[3] == pytest.approx(0.1)


def test_decay_at_moves_the_decay_points_and_keeps_the_factors():
    optimizer = training.make_optimizer("rat", 1000, learning_rate=0.05,
                                        decay_at=[0.5, 0.75, 0.9])
    rates = _learning_rates(optimizer, [499, 501, 749, 751, 899, 901])
    np.testing.assert_allclose(rates, [0.05, 0.01, 0.01, 0.002, 0.002, 4e-5], rtol=1e-5)


@pytest.mark.parametrize("decay_at", [[0.5, 0.75], [0.5, 0.4, 0.9], [0.0, 0.5, 0.9],
                                      [0.5, 0.75, 1.0], [0.5, 0.5, 0.9]])
def test_bad_decay_at_is_refused_by_name(decay_at):
    with pytest.raises(ValueError, match=r"`decay_at`.*Received: decay_at="):
        training.make_optimizer("rat", 1000, decay_at=decay_at)


def test_step_progress_prints_every_interval_with_the_time_left(capsys):
    now = [100.0]
    progress = training.StepProgress(steps_per_epoch=10, epochs=3, interval=60.0,
                                     clock=lambda: now[0])
    progress.on_epoch_begin(1)  # the second epoch (0-based), as after a resume
    for step in range(10):
        now[0] += 20.0  # 20 s per step: a line after steps 3, 6 and 9
        progress.on_train_batch_end(step, {"loss": 2.5})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    # After step 3: 20 s/step, 7 steps of this epoch + 10 of the last one = 340 s -> 6 min.
    assert lines[0] == ("epoch 2/3, step 3/10: 20.00 s/step, loss 2.5000; about 6 min of "
                        "training left (validation not counted)")
    progress.on_epoch_begin(2)
    progress.on_train_batch_end(0, None)  # within the interval: silent
    assert capsys.readouterr().out == ""


class _Interrupted(Exception):
    pass


class _InterruptAt(keras.callbacks.Callback):
    """Raises after batch ``batch`` of epoch ``epoch``, as a kill would stop the run."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.stop_epoch, self.stop_batch, self.epoch = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (self.stop_epoch, self.stop_batch):
            raise _Interrupted()


def _noisy_tiny_defense():
    from keras_rse.defenses import Defense

    from conftest import build_tiny_network

    model = Defense(build_tiny_network(seed=3), ensemble_size=2, seed=3)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_run_killed_mid_epoch_resumes_at_its_last_step_checkpoint(tmp_path):
    """5 steps per epoch, a checkpoint every 2: stopped after step 3 of epoch 2, the
    resumed run restarts at step 2 of that epoch and ends with the same weights as a
    run never stopped (same batches, same noise draws, same optimiser state)."""
    from conftest import make_synthetic_dataset

    x, y = make_synthetic_dataset(40, seed=5)
    xv, yv = make_synthetic_dataset(16, seed=6)
    args = dict(epochs=2, batch_size=8, seed=1, verbose=0, checkpoint_every=2)

    keras.utils.set_random_seed(0)
    whole = _noisy_tiny_defense()
    assert training.train(whole, x, y, xv, yv, workdir=str(tmp_path / "whole"),
                          **args)[:2] == (0, 0)

    keras.utils.set_random_seed(0)
    first = _noisy_tiny_defense()
    with pytest.raises(_Interrupted):
        training.train(first, x, y, xv, yv, workdir=str(tmp_path / "cut"),
                       callbacks=[_InterruptAt(epoch=1, batch=2)], **args)
    keras.utils.set_random_seed(123)  # the resumed process starts from other RNG states
    resumed = _noisy_tiny_defense()
    epochs_done, steps_done, _ = training.train(resumed, x, y, xv, yv,
                                                workdir=str(tmp_path / "cut"), **args)
    assert (epochs_done, steps_done) == (1, 2)
    assert int(resumed.optimizer.iterations) == int(whole.optimizer.iterations) == 10
    for a, b in zip(whole.network.get_weights(), resumed.network.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    epochs_logged = [line.split(",")[0] for line in
                     (tmp_path / "cut" / "log.csv").read_text().splitlines()[1:]]
    assert epochs_logged == ["0", "1"]  # the cut epoch is logged once, when it ends


def test_resumed_partial_epoch_is_printed_out_of_the_runs_epochs(tmp_path, capsys):
    """The rest of a cut epoch is a fit call of its own; its heading still counts the run's
    epochs ("Epoch 2/3"), not the call's ("Epoch 2/2")."""
    from conftest import make_synthetic_dataset

    x, y = make_synthetic_dataset(40, seed=5)
    xv, yv = make_synthetic_dataset(16, seed=6)
    args = dict(epochs=3, batch_size=8, seed=1, checkpoint_every=2,
                workdir=str(tmp_path / "run"))
    with pytest.raises(_Interrupted):
        training.train(_noisy_tiny_defense(), x, y, xv, yv, verbose=0,
                       callbacks=[_InterruptAt(epoch=1, batch=2)], **args)
    capsys.readouterr()
    training.train(_noisy_tiny_defense(), x, y, xv, yv, verbose=2, **args)
    headings = [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("Epoch ")]
    assert headings == ["Epoch 2/3", "Epoch 3/3"], headings
