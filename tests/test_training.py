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
