"""The optimiser recipes: warm-up, decay points, and the override of a shortened run."""

import os

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
    assert optimizer.l2 == pytest.approx(2e-3) and optimizer.weight_decay is None


def test_rse_code_recipe_is_the_rse_codes_four_blocks():
    """80 / 60 / 40 / 20 of 200 epochs at lr 0.1 / 0.01 / 0.001 / 0.0001, coupled 5e-4."""
    optimizer = training.make_optimizer("rse_code", 1000)
    rates = _learning_rates(optimizer, [100, 399, 401, 699, 701, 899, 901, 999])
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4],
                               rtol=1e-5)
    assert optimizer.l2 == pytest.approx(5e-4) and optimizer.weight_decay is None


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


def test_coupled_weight_decay_is_pytorch_sgds():
    """``l2 * w`` joins the gradient before the momentum, as torch.optim.SGD(weight_decay)."""
    w0 = np.array([1.0, -2.0, 0.5], np.float32)
    gradient = np.array([0.3, 0.1, -0.2], np.float32)
    lr, momentum, l2 = 0.1, 0.9, 0.05
    optimizer = training.CoupledWeightDecaySGD(lr, momentum=momentum, l2=l2)
    variable = keras.Variable(w0)
    for _ in range(5):
        optimizer.apply([gradient], [variable])
    w, buffer = w0.astype(np.float64), np.zeros(3)
    for _ in range(5):  # PyTorch's update, written out
        buffer = momentum * buffer + (gradient + l2 * w)
        w = w - lr * buffer
    np.testing.assert_allclose(variable.numpy(), w, rtol=1e-5)


def test_decoupled_decay_is_about_ten_times_weaker_under_momentum():
    """No gradient, lr 0.1, wd 5e-4, momentum 0.9, 300 steps: Keras's decoupled decay
    shrinks w by (1 - lr wd) per step; the coupled one is summed by the momentum
    (~1 / (1 - 0.9) = 10x in log terms, a little less while the momentum builds up)."""
    shrink = {}
    for name, optimizer in (
            ("coupled", training.CoupledWeightDecaySGD(0.1, momentum=0.9, l2=5e-4)),
            ("decoupled", keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4))):
        variable = keras.Variable(np.ones(1, np.float32))
        for _ in range(300):
            optimizer.apply([np.zeros(1, np.float32)], [variable])
        shrink[name] = float(np.log(variable.numpy()[0]))
    assert shrink["decoupled"] == pytest.approx(300 * np.log1p(-5e-5), rel=1e-3)
    assert 9.0 < shrink["coupled"] / shrink["decoupled"] < 10.0, shrink


def test_make_optimizer_styles_exclusions_and_refusals():
    coupled = training.make_optimizer("rse", 100)
    assert isinstance(coupled, training.CoupledWeightDecaySGD)
    assert coupled.l2 == pytest.approx(5e-4) and coupled.weight_decay is None
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(coupled))
    assert isinstance(restored, training.CoupledWeightDecaySGD) and restored.l2 == coupled.l2
    decoupled = training.make_optimizer("rse", 100, weight_decay_style="decoupled")
    assert type(decoupled) is keras.optimizers.SGD
    assert decoupled.weight_decay == pytest.approx(5e-4)
    kept, decayed = (keras.Variable(np.ones(2, np.float32)) for _ in range(2))
    optimizer = training.make_optimizer("rse", 100, no_decay_variables=[kept])
    zero = np.zeros(2, np.float32)
    for _ in range(3):
        optimizer.apply([zero, zero], [kept, decayed])
    assert np.all(kept.numpy() == 1.0) and np.all(decayed.numpy() < 1.0)
    for kwargs in (dict(weight_decay_style="l2"), dict(learning_rate=0.0),
                   dict(learning_rate=-0.1), dict(weight_decay=-1e-3)):
        (name, value), = kwargs.items()
        with pytest.raises(ValueError, match=rf"`{name}`.*Received: {name}={value!r}"):
            training.make_optimizer("rse", 100, **kwargs)


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


def test_log_row_of_an_epoch_the_resume_repeats_is_dropped(tmp_path):
    """The CSV row is written before the epoch's checkpoint: a run killed between the two
    left a row for an epoch that the resume trains again; the log keeps one row per epoch."""
    from conftest import make_synthetic_dataset

    x, y = make_synthetic_dataset(40, seed=5)
    xv, yv = make_synthetic_dataset(16, seed=6)
    args = dict(batch_size=8, seed=1, verbose=0, workdir=str(tmp_path))
    training.train(_noisy_tiny_defense(), x, y, xv, yv, epochs=2, **args)
    log = tmp_path / "log.csv"
    with open(log, "a") as f:  # epoch index 2 logged, its checkpoint never written
        f.write("2,0.5,1.0,0.5,1.0\n")
    training.train(_noisy_tiny_defense(), x, y, xv, yv, epochs=3, **args)
    epochs_logged = [line.split(",")[0] for line in log.read_text().splitlines()[1:]]
    assert epochs_logged == ["0", "1", "2"]
    assert "2,0.5,1.0,0.5,1.0" not in log.read_text()


def test_fewer_epochs_than_the_checkpoint_has_are_refused(tmp_path):
    """Also the run's last epoch when the checkpoint is already inside the next one
    (training nothing would publish weights from partway through an extra epoch)."""
    from conftest import make_synthetic_dataset

    x, y = make_synthetic_dataset(40, seed=5)
    args = dict(batch_size=8, seed=1, verbose=0, checkpoint_every=2)
    training.train(_noisy_tiny_defense(), x, y, x, y, epochs=2, workdir=str(tmp_path / "a"),
                   **args)
    with pytest.raises(ValueError, match=r"`epochs`.*at least the 2 epochs the checkpoint"
                                         r".*Received: epochs=1"):
        training.train(_noisy_tiny_defense(), x, y, x, y, epochs=1, workdir=str(tmp_path / "a"),
                       **args)
    with pytest.raises(_Interrupted):  # cut at step 3 of epoch 2: checkpoint at its step 2
        training.train(_noisy_tiny_defense(), x, y, x, y, epochs=3, workdir=str(tmp_path / "b"),
                       callbacks=[_InterruptAt(epoch=1, batch=2)], **args)
    with pytest.raises(ValueError, match=r"more than the 1 epochs and 2 steps.*epochs=1"):
        training.train(_noisy_tiny_defense(), x, y, x, y, epochs=1, workdir=str(tmp_path / "b"),
                       **args)


def test_log_rows_without_a_checkpoint_or_half_written_are_dropped(tmp_path):
    """A first epoch killed between its row and its checkpoint, and a row cut mid-write:
    the restarted run logs each epoch once."""
    from conftest import make_synthetic_dataset

    x, y = make_synthetic_dataset(16, seed=5)
    (tmp_path / "log.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n"
                                      "0,0.5,1.0,0.5,1.0\n1,0.5")
    training.train(_noisy_tiny_defense(), x, y, x, y, epochs=1, batch_size=8, seed=1,
                   verbose=0, workdir=str(tmp_path))
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and [row.split(",")[0] for row in rows[1:]] == ["0"]
    assert rows[1] != "0,0.5,1.0,0.5,1.0"


_MIRRORED_DECAY = """
import json
import numpy as np, tensorflow as tf
from keras_rse import distribute, training
distribute.split_cpu(2)
strategy = distribute.get_strategy("mirrored")
import keras
with strategy.scope():
    kept = keras.Variable(np.ones(2, np.float32))
    decayed = keras.Variable(np.ones(2, np.float32))
    optimizer = training.CoupledWeightDecaySGD(0.1, momentum=0.9, l2=0.5)
    optimizer.exclude_from_weight_decay(var_list=[kept])
    optimizer.build([kept, decayed])

@tf.function
def step():
    def replica_step():
        zero = tf.zeros(2)
        optimizer.apply_gradients([(zero, kept), (zero, decayed)])
    strategy.run(replica_step)

for _ in range(2):
    step()
# PyTorch: buffer 0.5 -> 0.9 * 0.5 + 0.5 * 0.95; w 1 -> 0.95 -> 0.95 - 0.1 * 0.925 = 0.8575
print(json.dumps([strategy.num_replicas_in_sync, kept.numpy().tolist(),
                  decayed.numpy().tolist()]))
"""


def test_coupled_decay_and_its_exclusions_under_a_mirrored_strategy():
    """Two replicas (logical CPUs): the excluded variable keeps its value, the other one
    follows PyTorch's coupled update once (replicas' gradients are summed, not the decay)."""
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _MIRRORED_DECAY], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    replicas, kept, decayed = json.loads(done.stdout.strip().splitlines()[-1])
    assert replicas == 2 and kept == [1.0, 1.0]
    np.testing.assert_allclose(decayed, [0.8575, 0.8575], rtol=1e-6)


class _EpochEndWeights(keras.callbacks.Callback):
    """Keeps the network's trainable weights and bn1's moving mean at every epoch's end."""

    def __init__(self, network):
        super().__init__()
        self.network, self.weights, self.bn_means = network, [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([v.numpy() for v in self.network.trainable_variables])
        self.bn_means.append(self.network.get_layer("bn1").moving_mean.numpy())


def test_weight_average_is_the_mean_of_the_chosen_epochs_weights(tmp_path):
    """average_from_epoch=2 of 4: the model ends with the mean of epochs 2-4's final
    weights (not the last epoch's), and the batch norm is recomputed for them."""
    from conftest import make_synthetic_dataset

    x, y = make_synthetic_dataset(40, seed=5)
    xv, yv = make_synthetic_dataset(16, seed=6)
    model = _noisy_tiny_defense()
    seen = _EpochEndWeights(model.network)
    momentum = model.network.get_layer("bn1").momentum
    training.train(model, x, y, xv, yv, workdir=str(tmp_path), epochs=4, batch_size=8, seed=1,
                   verbose=0, callbacks=[seen], average_from_epoch=2)
    for i, variable in enumerate(model.network.trainable_variables):
        expected = np.mean([weights[i] for weights in seen.weights[1:]], axis=0)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(variable.numpy(), seen.weights[-1][i])
    bn = model.network.get_layer("bn1")
    assert not np.allclose(bn.moving_mean.numpy(), seen.bn_means[-1], rtol=1e-3)
    assert bn.momentum == momentum  # restored afterwards


def test_weight_average_survives_a_kill_and_resume(tmp_path):
    """Killed in epoch 3's first step (the checkpoint of epoch 2 holds a mean of epochs
    1-2: the average updates before the checkpoint saves), the resumed run ends with the
    same averaged weights as a run never stopped; so does the finished run started again."""
    from conftest import make_synthetic_dataset

    x, y = make_synthetic_dataset(40, seed=5)
    xv, yv = make_synthetic_dataset(16, seed=6)
    args = dict(epochs=3, batch_size=8, seed=1, verbose=0, average_from_epoch=1)
    keras.utils.set_random_seed(0)
    whole = _noisy_tiny_defense()
    training.train(whole, x, y, xv, yv, workdir=str(tmp_path / "whole"), **args)
    keras.utils.set_random_seed(0)
    with pytest.raises(_Interrupted):
        training.train(_noisy_tiny_defense(), x, y, xv, yv, workdir=str(tmp_path / "cut"),
                       callbacks=[_InterruptAt(epoch=2, batch=0)], **args)
    for seed in (123, 7):  # the resume, then the finished run started again
        keras.utils.set_random_seed(seed)
        resumed = _noisy_tiny_defense()
        training.train(resumed, x, y, xv, yv, workdir=str(tmp_path / "cut"), **args)
        for a, b in zip(whole.network.get_weights(), resumed.network.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_weight_average_refuses_a_checkpoint_that_did_not_average(tmp_path):
    """Two epochs trained without averaging, then resumed with average_from_epoch=1: the
    mean would miss epochs 1-2, so the run is refused before any step."""
    from conftest import make_synthetic_dataset

    x, y = make_synthetic_dataset(24, seed=5)
    xv, yv = make_synthetic_dataset(8, seed=6)
    args = dict(batch_size=8, seed=1, verbose=0, workdir=str(tmp_path))
    training.train(_noisy_tiny_defense(), x, y, xv, yv, epochs=2, **args)
    with pytest.raises(ValueError, match=r"argument `average_from_epoch`.*checkpoint in .*"
                                         r"holds no weight average after 2 epochs.*needs 2"):
        training.train(_noisy_tiny_defense(), x, y, xv, yv, epochs=3, average_from_epoch=1,
                       **args)
    with pytest.raises(ValueError, match=r"`average_from_epoch`.*\[1, 3\].*Received: "
                                         r"average_from_epoch=4"):
        training.train(_noisy_tiny_defense(), x, y, xv, yv, epochs=3, average_from_epoch=4,
                       **args)


def test_weight_average_is_refused_for_a_defense_training_on_transformed_images(tmp_path):
    """Batch-norm statistics recomputed on clean images would not be those of training on
    noisy (or adversarial) ones: refused before any step, naming the defense."""
    from keras_rse.defenses import GaussianAugmentation

    from conftest import build_tiny_network, make_synthetic_dataset

    x, y = make_synthetic_dataset(8, seed=5)
    model = GaussianAugmentation(build_tiny_network(seed=3), ensemble_size=2, seed=3)
    with pytest.raises(ValueError, match=r"weight averaging recomputes.*GaussianAugmentation "
                                         r"trains on images it transforms.*"
                                         r"average_from_epoch=1 with a GaussianAugmentation"):
        training.train(model, x, y, x, y, epochs=1, average_from_epoch=1, batch_size=8, seed=1,
                       verbose=0, workdir=str(tmp_path))
    assert not os.listdir(tmp_path)


def test_recomputed_batch_norm_statistics_are_the_mean_over_batches():
    """Without noise the result is exact: the moving mean / variance become the mean of
    the per-batch means / (biased) variances of the layer's input, the last, smaller
    batch counting as much as the others."""
    from conftest import build_tiny_network

    network = build_tiny_network(init_noise=0.0, inner_noise=0.0)
    x = np.random.default_rng(0).random((20, 16, 16, 3), dtype=np.float32)
    bn = network.get_layer("bn1")
    momentum = bn.momentum
    assert training.recompute_batch_norm_statistics(network, x, batch_size=8) == 1
    conv = keras.Model(network.inputs, network.get_layer("conv1").output)
    batches = [conv(x[i:i + 8]).numpy() for i in range(0, 20, 8)]  # 8, 8 and 4 images
    np.testing.assert_allclose(bn.moving_mean.numpy(),
                               np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(),
                               np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0),
                               rtol=1e-4, atol=1e-6)
    assert bn.momentum == momentum
