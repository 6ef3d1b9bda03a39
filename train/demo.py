"""A 20-second tour of RSE on a small model: noisy SGD, then the self-ensemble.

Not a way to train a preset (that is ``train/fit.py``) nor to evaluate one
(``train/evaluate.py``): it shows the two ideas of RSE end to end in seconds.

Trains a small noisy VGG16 (RSE noise 0.2 / 0.1, width x1/8) for a few epochs on
a slice of CIFAR-10 read from a local npz directory (``--data_dir`` or the
``KERAS_RSE_DATA_DIR`` variable; layout of ``../shared/data/cifar10``), then
reports test accuracy of one noisy pass and of the ensemble for several sizes.

    python3 train/demo.py --data_dir ../shared/data/cifar10
"""

import os
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", os.environ.get("KERAS_RSE_DATA_DIR"),
                    "Directory with cifar10_train.npz and cifar10_test.npz.")
flags.DEFINE_integer("train_examples", 5000, "Training images used (from the start).")
flags.DEFINE_integer("test_examples", 1000, "Test images used (from the start).")
flags.DEFINE_integer("epochs", 3, "Training epochs.")
flags.DEFINE_integer("seed", 0, "Seed for weights, noise and shuffling.")


def _load(data_dir, split, limit):
    import numpy as np

    path = os.path.join(data_dir, f"cifar10_{split}.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Invalid value for flag `--data_dir`. Expected a directory holding "
            f"cifar10_{split}.npz. Received: data_dir={data_dir!r}")
    with np.load(path) as data:
        return data["x"][:limit].astype("float32") / 255.0, data["y"][:limit].astype("int32")


def main(argv):
    del argv
    if not FLAGS.data_dir:
        raise app.UsageError("Give --data_dir or set KERAS_RSE_DATA_DIR (CIFAR-10 npz files).")
    import keras
    import numpy as np

    import keras_rse

    keras.utils.set_random_seed(FLAGS.seed)
    x_train, y_train = _load(FLAGS.data_dir, "train", FLAGS.train_examples)
    x_test, y_test = _load(FLAGS.data_dir, "test", FLAGS.test_examples)
    model = keras_rse.models.create_model("vgg16_tiny", seed=FLAGS.seed)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.time()
    model.fit(x_train, y_train, batch_size=128, epochs=FLAGS.epochs, verbose=2)
    print(f"trained {FLAGS.epochs} epochs on {len(x_train)} images in {time.time() - start:.0f}s")
    single = np.mean(np.argmax(model(x_test[:500]).numpy(), 1) == y_test[:500])
    print(f"single noisy pass, first 500 test images: accuracy {single:.3f}")
    for n in (1, 10, 50):
        model.ensemble_size = n
        probs = model.predict(x_test, batch_size=100, verbose=0)
        print(f"ensemble n={n:2d}, {len(x_test)} test images: "
              f"accuracy {np.mean(probs.argmax(1) == y_test):.3f}")


if __name__ == "__main__":
    app.run(main)
