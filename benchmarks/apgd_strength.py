"""APGD vs PGD strength on the test suite's toy models (the numbers quoted in `attacks.apgd`).

Trains the synthetic-data CNN of ``tests/conftest.py`` (and its noisy variant, as in
``tests/test_attacks.py``) and prints the accuracy left after PGD, APGD-CE and APGD-DLR:
deterministic CNN at Linf 4/255 with 10 and 20 iterations; noisy CNN at Linf 3/255 with 50
iterations and EOT 4 and 20. About two minutes on 2 CPU cores.

    python benchmarks/apgd_strength.py
"""

import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import conftest  # noqa: E402  (the tests' toy data and CNN)

from keras_rse import attacks  # noqa: E402
from keras_rse.models import randomize  # noqa: E402


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def main():
    keras.utils.set_random_seed(0)
    cnn = conftest.build_small_cnn()
    x, y = conftest.make_synthetic_dataset(3000, seed=1)
    cnn.compile(optimizer=keras.optimizers.Adam(3e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cnn.fit(x, y, batch_size=64, epochs=6, verbose=0)
    x_test, y_test = conftest.make_synthetic_dataset(200, seed=2)
    for steps in (10, 20):
        row = {"pgd": attacks.pgd(cnn, x_test, y_test, eps=4 / 255, steps=steps, seed=0)}
        for loss in ("ce", "dlr"):
            row[f"apgd-{loss}"] = attacks.apgd(cnn, x_test, y_test, eps=4 / 255, steps=steps,
                                               loss=loss, seed=0)
        print(f"deterministic CNN, Linf 4/255, {steps} iterations: " + ", ".join(
            f"{k} {_accuracy(cnn, r.x_adv, y_test):.3f}" for k, r in row.items()), flush=True)

    noisy = randomize(cnn, init_noise=0.1, inner_noise=0.3, seed=11, ensemble_size=20)
    noisy.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x_noise, y_noise = conftest.make_synthetic_dataset(2000, seed=5)
    noisy.fit(x_noise, y_noise, batch_size=64, epochs=2, verbose=0)
    for draws in (4, 20):
        row = {"pgd": attacks.pgd(noisy, x_test, y_test, eps=3 / 255, steps=50,
                                  eot_samples=draws, seed=0)}
        for loss in ("ce", "dlr"):
            row[f"apgd-{loss}"] = attacks.apgd(noisy, x_test, y_test, eps=3 / 255, steps=50,
                                               loss=loss, eot_samples=draws, seed=0)
        print(f"noisy CNN, Linf 3/255, 50 iterations, EOT {draws}: " + ", ".join(
            f"{k} {_accuracy(noisy, r.x_adv, y_test):.3f}" for k, r in row.items()), flush=True)


if __name__ == "__main__":
    main()
