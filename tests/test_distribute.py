"""Attacks under tf.distribute: MirroredStrategy (2 logical CPUs) and 2 local workers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_rse import attacks, distribute
from keras_rse.models import randomize

from conftest import free_port

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")


def _run(mode, model_path, data_path, out_path, random_init, eot, env=None, wait=True):
    cmd = [sys.executable, WORKER, mode, model_path, data_path, out_path, str(int(random_init)),
           str(eot)]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if wait:
        _finish(proc)
    return proc


def _finish(proc, timeout=240):
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output[-3000:]


def _load(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, trained_cnn, attack_data):
    folder = tmp_path_factory.mktemp("distributed")
    deterministic = str(folder / "cnn.keras")
    trained_cnn.save(deterministic)
    noisy = str(folder / "noisy.keras")
    randomize(trained_cnn, init_noise=0.05, inner_noise=0.1, seed=3, ensemble_size=8).save(noisy)
    data = str(folder / "data.npz")
    x, y = attack_data
    np.savez(data, x=x[:150], y=y[:150])  # 150 = 3 batches of 50: replicas split unevenly
    return folder, deterministic, noisy, data


def test_single_device_run_covers_every_example_in_order(saved, trained_cnn, attack_data):
    folder, deterministic, _, data = saved
    x, y = attack_data
    pgd = attacks.make_pgd(trained_cnn, steps=5, random_init=False)
    import tensorflow as tf

    eps, step, seed = tf.constant(4 / 255), tf.constant(1 / 255), tf.constant([7, 0])
    results = distribute.run_attack(trained_cnn, lambda a, b: pgd(a, b, eps, step, seed),
                                    x[:150], y[:150], batch_size=64, progress=False)
    np.testing.assert_array_equal(results["index"], np.arange(150))
    direct = attacks.pgd(trained_cnn, x[:150], y[:150], eps=4 / 255, steps=5,
                         step_size=1 / 255, random_init=False)
    np.testing.assert_array_equal(results["success"], direct.success.numpy())
    assert 0 < results["robust_accuracy"] < results["clean_accuracy"]


def test_interrupted_run_resumes_at_its_first_unfinished_batch(trained_cnn, attack_data):
    """Finished batches are passed back, not attacked again; the result is the uninterrupted one."""
    import tensorflow as tf

    x, y = attack_data[0][:150], attack_data[1][:150]
    pgd = attacks.make_pgd(trained_cnn, steps=3, random_init=False)
    eps, step, seed = tf.constant(4 / 255), tf.constant(1 / 255), tf.constant([7, 0])
    attack_fn = lambda a, b: pgd(a, b, eps, step, seed)  # noqa: E731
    kept = []
    whole = distribute.run_attack(trained_cnn, attack_fn, x, y, batch_size=64, progress=False,
                                  on_batch=lambda number, part: kept.append((number, part)))
    assert [number for number, _ in kept] == [0, 1, 2]
    assert [len(part["index"]) for _, part in kept] == [64, 64, 22]
    # Pretend the run was killed after batch 0; mark its results so a re-attack would show.
    first = dict(kept[0][1], l2=np.full(64, 123.0))
    seen = []
    resumed = distribute.run_attack(trained_cnn, attack_fn, x, y, batch_size=64, progress=False,
                                    finished=[first], on_batch=lambda n, part: seen.append(n))
    assert seen == [1, 2]  # numbering continues after the finished batch
    np.testing.assert_array_equal(resumed["l2"][:64], 123.0)
    np.testing.assert_allclose(resumed["l2"][64:], whole["l2"][64:], rtol=1e-5)
    for key in ("index", "success", "adversarial_prediction"):
        np.testing.assert_array_equal(resumed[key], whole[key])
    everything = distribute.run_attack(trained_cnn, attack_fn, x, y, batch_size=64,
                                       progress=False, finished=[p for _, p in kept])
    np.testing.assert_array_equal(everything["success"], whole["success"])
    with pytest.raises(ValueError, match=r"`finished`.*whole batches of 64.*\[22\]"):
        distribute.run_attack(trained_cnn, attack_fn, x, y, batch_size=64, progress=False,
                              finished=[kept[2][1]])


def test_mirrored_strategy_matches_single_device(saved):
    folder, deterministic, _, data = saved
    _run("single", deterministic, data, str(folder / "single.json"), False, 1)
    _run("mirrored", deterministic, data, str(folder / "mirrored.json"), False, 1)
    single, mirrored = _load(folder / "single.json"), _load(folder / "mirrored.json")
    assert mirrored["num_replicas"] == 2 and single["num_replicas"] == 1
    assert mirrored["index"] == list(range(150))
    # No random start and a deterministic model: the same attack, example by example.
    assert mirrored["success"] == single["success"]
    np.testing.assert_allclose(mirrored["l2"], single["l2"], atol=1e-4)


@pytest.mark.slow
def test_mirrored_strategy_with_noise_and_eot_agrees_statistically(saved):
    folder, _, noisy, data = saved
    _run("single", noisy, data, str(folder / "noisy_single.json"), True, 4)
    _run("mirrored", noisy, data, str(folder / "noisy_mirrored.json"), True, 4)
    single, mirrored = _load(folder / "noisy_single.json"), _load(folder / "noisy_mirrored.json")
    assert mirrored["index"] == list(range(150))
    assert abs(single["robust_accuracy"] - mirrored["robust_accuracy"]) < 0.1
    assert abs(single["clean_accuracy"] - mirrored["clean_accuracy"]) < 0.05


def test_two_workers_on_localhost_match_single_device(saved):
    folder, deterministic, _, data = saved
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for task in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": task}})
        procs.append(_run("multiworker", deterministic, data, str(folder / f"worker{task}.json"),
                          False, 1, env={"TF_CONFIG": tf_config}, wait=False))
    for proc in procs:
        _finish(proc)
    _run("single", deterministic, data, str(folder / "single_mw.json"), False, 1)
    single = _load(folder / "single_mw.json")
    for task in range(2):
        worker = _load(folder / f"worker{task}.json")
        assert worker["num_replicas"] == 2
        assert worker["index"] == list(range(150))  # each example once, gathered on both
        assert worker["success"] == single["success"]


RESEED_UNDER_MIRRORED = """
import json, sys
import numpy as np, tensorflow as tf, keras
from keras_rse import distribute
from keras_rse.layers import RandomNoise, reseed_random_generators
distribute.split_cpu(2)
strategy = distribute.get_strategy("mirrored")
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), RandomNoise(1.0), RandomNoise(1.0)])
x = tf.zeros((2, 4))
run = tf.function(lambda: strategy.run(model, args=(x,)))

def draws(key):
    reseed_random_generators(model, key, strategy)
    return [t.numpy() for t in strategy.experimental_local_results(run())]

first, again, other = draws("k"), draws("k"), draws("j")
print(json.dumps({
    "replicas_differ": not np.array_equal(first[0], first[1]),
    "repeats": all(np.array_equal(u, v) for u, v in zip(first, again)),
    "other_key_differs": not np.array_equal(first[0], other[0])}))
"""


def test_reseeding_under_mirrored_strategy_gives_each_replica_its_own_noise():
    """Mirrored states start equal: without per-replica streams both replicas draw alike."""
    proc = subprocess.run([sys.executable, "-c", RESEED_UNDER_MIRRORED], capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"replicas_differ": True, "repeats": True, "other_key_differs": True}


TRAIN_UNDER_MIRRORED = """
import json, sys
sys.path.insert(0, sys.argv[1])
from keras_rse import distribute, training
from keras_rse.layers import random_generator_states
distribute.split_cpu(2)
strategy = distribute.get_strategy("mirrored")
from conftest import make_synthetic_dataset
from test_training import _noisy_tiny_defense

x, y = make_synthetic_dataset(40, seed=5)
xv, yv = make_synthetic_dataset(16, seed=6)

def trained():
    with strategy.scope():
        model = _noisy_tiny_defense()
    training.train(model, x, y, xv, yv, workdir=sys.argv[2], epochs=1, batch_size=8, seed=1,
                   verbose=0)
    return [[c.numpy().tolist() for c in strategy.experimental_local_results(state.value)]
            for state in random_generator_states(model)]

after_training = trained()
# The same workdir again: nothing left to train; the restored states must give each
# replica the stream it trained with (a resumed run draws as the first one did).
after_restore = trained()
print(json.dumps({"after_training": after_training, "after_restore": after_restore}))
"""


def test_training_under_mirrored_strategy_gives_each_replica_its_own_noise(tmp_path):
    """Mirrored noise states start equal: without per-replica streams, example i of each
    replica's sub-batch got the same noise throughout training."""
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", TRAIN_UNDER_MIRRORED, tests_dir,
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    states = result["after_training"]
    assert states, "the tiny defense has no random generators"
    for replica0, replica1 in states:
        assert replica0[0] != replica1[0]  # own streams
        assert replica0[1] == replica1[1]  # the same number of draws
    assert any(replica0[1] > 0 for replica0, _ in states)  # the noise was drawn from
    assert result["after_restore"] == states
