"""Does storing a preset's weights as float16 change its accuracy? (noise off, test split)

    python benchmarks/check_float16_weights.py --model cifar10_vgg16_rse \
        --float32 <workdir>/model.weights.h5 --float16 zoo/weights/<file>.npz \
        --data_dir ../shared/data/cifar10 [--limit 10000]

Prints the largest weight difference, the noise-off accuracy of both copies and the share
of identical predictions (noise off, so the comparison sees only the rounding; a preset
without noise layers is compared as it is).
"""

import contextlib
import time

import numpy as np
from absl import app, flags

flags.DEFINE_string("model", None, "Zoo preset.", required=True)
flags.DEFINE_string("float32", None, "The trained model.weights.h5.", required=True)
flags.DEFINE_string("float16", None, "The exported float16 .npz.", required=True)
flags.DEFINE_string("data_dir", None, "Data directory (else KERAS_RSE_DATA_DIR / tfds).")
flags.DEFINE_integer("limit", None, "Only the first N test images.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from keras_rse import data, zoo
    from keras_rse.layers import noise_scale
    from keras_rse.layers.noise_control import noise_layers
    from keras_rse.zoo import weights as zoo_weights

    preset = zoo.get_preset(FLAGS.model)
    x, y = data.load_split(preset["dataset"], "test", FLAGS.data_dir, limit=FLAGS.limit)
    full = zoo.build(FLAGS.model)
    full.load_weights(FLAGS.float32)
    half = zoo.build(FLAGS.model)
    zoo_weights.load_npz(half.network, FLAGS.float16)
    difference = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                     for a, b in zip(full.network.weights, half.network.weights))
    print(f"max |w32 - w16| over variables: {difference:.3g}")
    predictions = {}
    for name, model in (("float32", full), ("float16-stored", half)):
        start = time.time()
        # An undefended preset has no noise to switch off.
        quiet = noise_scale(model, 0.0) if noise_layers(model) else contextlib.nullcontext()
        with quiet:
            logits = model.network.predict(x, batch_size=500, verbose=0)
        predictions[name] = logits.argmax(1)
        print(f"{name}: noise-off accuracy {np.mean(predictions[name] == y):.4f} on {len(y)} "
              f"({time.time() - start:.0f} s)", flush=True)
    print("identical noise-off predictions: "
          f"{np.mean(predictions['float32'] == predictions['float16-stored']):.4f}")


if __name__ == "__main__":
    app.run(main)
