"""The optimiser recipes: warm-up, decay points, and the override of a shortened run."""

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
