"""Attack benchmark: keras_rse vs CleverHans 4.0, Foolbox 3.3.4 and ART 1.20.1.

Same Keras CNN (conv 32-64-128 + ReLU + pooling, dense 10, trained here on
CIFAR-10), same 256 test images, same settings, one library per subprocess:

  FGSM   Linf 8/255
  PGD    Linf 8/255, step 2/255, 10 steps, random start
  C&W    L2 untargeted, kappa 0, lr 0.01, 100 steps, 5 binary-search steps, c0 0.1
  EOT    PGD as above with 10 noise draws, on the CNN with RSE noise (0.1 / 0.05)

Strength is the accuracy of the attacked model on the returned images (for the
noisy model: its 10-draw self-ensemble) and, for C&W, the median L2 of the
successful examples. Each attack runs once untimed (tracing), then `--repeats` timed calls
(median reported; C&W once: minutes per call).

    pip install -e ".[bench]"
    python benchmarks/bench_attacks.py --data_dir ../shared/data/cifar10 [--libraries ...]
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", os.environ.get("KERAS_RSE_DATA_DIR"), "CIFAR-10 npz directory.")
flags.DEFINE_string("workdir", "benchmarks/results/attacks", "Model, data and results folder.")
flags.DEFINE_list("libraries", ["keras_rse", "keras_rse_bf16", "cleverhans", "foolbox", "art"],
                  "Libraries to run (keras_rse_bf16: our attacks on a mixed_bfloat16 copy, "
                  "judged on the float32 model).")
flags.DEFINE_list("attacks", ["fgsm", "pgd", "cw", "eot_pgd"], "Attacks to run.")
flags.DEFINE_string("python", sys.executable, "Interpreter with the peers installed.")
flags.DEFINE_string("library", None, "Internal: run one library in this process.")
flags.DEFINE_integer("examples", 256, "Test images attacked.")
flags.DEFINE_integer("repeats", 5, "Timed calls per attack (median reported); C&W is timed "
                     "once.", lower_bound=1)

EPS, STEP, STEPS = 8 / 255, 2 / 255, 10
CW = dict(confidence=0.0, learning_rate=0.01, steps=100, binary_search_steps=5, initial_c=0.1)
EOT_DRAWS = 10


def _compile(model):
    import keras

    model.compile(optimizer="adam", metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def prepare(workdir, data_dir, examples):
    """Trains the CNN (2 epochs on 40k images) and its noisy variant, saves them once."""
    import keras
    import numpy as np

    import keras_rse

    if os.path.exists(os.path.join(workdir, "noisy.keras")):
        return
    os.makedirs(workdir, exist_ok=True)
    train, test = (np.load(os.path.join(data_dir, f"cifar10_{s}.npz")) for s in ("train", "test"))
    x_train, y_train = train["x"][:40000] / 255.0, train["y"][:40000]
    keras.utils.set_random_seed(0)
    layers = [keras.Input((32, 32, 3))]
    for filters in (32, 64, 128):
        layers += [keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
                   keras.layers.MaxPooling2D()]
    model = _compile(keras.Sequential(layers + [keras.layers.Flatten(), keras.layers.Dense(10)]))
    model.fit(x_train, y_train, batch_size=128, epochs=2, verbose=2)
    model.save(os.path.join(workdir, "cnn.keras"))
    # The noisy variant is fine-tuned with its noise on (RSE's noisy SGD), one epoch.
    noisy = _compile(keras_rse.models.randomize(model, init_noise=0.1, inner_noise=0.05, seed=0))
    noisy.fit(x_train, y_train, batch_size=128, epochs=1, verbose=2)
    noisy.save(os.path.join(workdir, "noisy.keras"))
    np.savez(os.path.join(workdir, "data.npz"), x=test["x"][:examples] / 255.0,
             y=test["y"][:examples].astype("int64"))


def _tiled_mean_logits(model, draws):
    """x -> mean logits over ``draws`` noise draws: how a peer user would add EOT."""
    import tensorflow as tf

    def fn(x, training=False):  # ART passes `training`
        del training  # batch norm stays in inference mode while attacking
        logits = model(tf.tile(x, [draws, 1, 1, 1]), training=False)
        return tf.reduce_mean(tf.reshape(logits, [draws, -1, logits.shape[-1]]), axis=0)

    return fn


def _attacks_keras_rse(cnn, noisy, x, y):
    from keras_rse import attacks

    cw = dict(CW)
    return {
        "fgsm": lambda: attacks.fgsm(cnn, x, y, eps=EPS).x_adv,
        "pgd": lambda: attacks.pgd(cnn, x, y, eps=EPS, step_size=STEP, steps=STEPS,
                                   seed=0).x_adv,
        "cw": lambda: attacks.carlini_wagner_l2(cnn, x, y, **cw).x_adv,
        "eot_pgd": lambda: attacks.pgd(noisy, x, y, eps=EPS, step_size=STEP, steps=STEPS,
                                       eot_samples=EOT_DRAWS, seed=0).x_adv,
    }


def _attacks_keras_rse_bf16(cnn, noisy, x, y):
    """Our attacks computed in bfloat16 (AMX); `run_library` judges them on float32 models."""
    from keras_rse.models import with_dtype_policy

    return _attacks_keras_rse(with_dtype_policy(cnn), with_dtype_policy(noisy), x, y)


def _attacks_cleverhans(cnn, noisy, x, y):
    import numpy as np
    import tensorflow as tf
    from cleverhans.tf2.attacks.carlini_wagner_l2 import carlini_wagner_l2
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    x, y = tf.constant(x, tf.float32), tf.constant(y)
    model_fn = lambda t: cnn(t, training=False)  # noqa: E731
    eot_fn = _tiled_mean_logits(noisy, EOT_DRAWS)
    pgd_args = dict(eps=EPS, eps_iter=STEP, nb_iter=STEPS, norm=np.inf, clip_min=0.0,
                    clip_max=1.0, y=y, rand_init=True, sanity_checks=False)
    return {
        "fgsm": lambda: fast_gradient_method(model_fn, x, EPS, np.inf, clip_min=0.0,
                                             clip_max=1.0, y=y),
        "pgd": lambda: projected_gradient_descent(model_fn, x, **pgd_args),
        "cw": lambda: carlini_wagner_l2(  # its y is one-hot
            model_fn, x, y=tf.one_hot(y, 10), batch_size=len(x), clip_min=0.0, clip_max=1.0,
            binary_search_steps=CW["binary_search_steps"], max_iterations=CW["steps"],
            abort_early=True, confidence=CW["confidence"], initial_const=CW["initial_c"],
            learning_rate=CW["learning_rate"]),
        "eot_pgd": lambda: projected_gradient_descent(eot_fn, x, **pgd_args),
    }


def _attacks_foolbox(cnn, noisy, x, y):
    import foolbox as fb
    import tensorflow as tf

    x, y = tf.constant(x, tf.float32), tf.constant(y)
    model = fb.TensorFlowModel(lambda t: cnn(t, training=False), bounds=(0, 1))
    eot_model = fb.TensorFlowModel(_tiled_mean_logits(noisy, EOT_DRAWS), bounds=(0, 1))
    pgd = fb.attacks.LinfPGD(abs_stepsize=STEP, steps=STEPS, random_start=True)
    cw = fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=CW["binary_search_steps"], steps=CW["steps"],
        stepsize=CW["learning_rate"], confidence=CW["confidence"],
        initial_const=CW["initial_c"], abort_early=True)
    return {
        "fgsm": lambda: fb.attacks.FGSM()(model, x, y, epsilons=EPS)[1],
        "pgd": lambda: pgd(model, x, y, epsilons=EPS)[1],
        "cw": lambda: cw(model, x, y, epsilons=None)[1],
        "eot_pgd": lambda: pgd(eot_model, x, y, epsilons=EPS)[1],
    }


def _attacks_art(cnn, noisy, x, y):
    import keras
    import numpy as np
    from art.attacks.evasion import CarliniL2Method, FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import TensorFlowV2Classifier

    def classifier(fn):
        return TensorFlowV2Classifier(
            fn, nb_classes=10, input_shape=(32, 32, 3), clip_values=(0.0, 1.0),
            loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    plain = classifier(lambda t, training=False: cnn(t, training=False))
    eot = classifier(_tiled_mean_logits(noisy, EOT_DRAWS))
    x = x.astype(np.float32)
    pgd_args = dict(norm=np.inf, eps=EPS, eps_step=STEP, max_iter=STEPS, num_random_init=1,
                    batch_size=len(x), verbose=False)
    return {
        "fgsm": lambda: FastGradientMethod(plain, norm=np.inf, eps=EPS,
                                           batch_size=len(x)).generate(x, y=y),
        "pgd": lambda: ProjectedGradientDescent(plain, **pgd_args).generate(x, y=y),
        "cw": lambda: CarliniL2Method(
            plain, confidence=CW["confidence"], learning_rate=CW["learning_rate"],
            binary_search_steps=CW["binary_search_steps"], max_iter=CW["steps"],
            initial_const=CW["initial_c"], batch_size=len(x), verbose=False).generate(x, y=y),
        "eot_pgd": lambda: ProjectedGradientDescent(eot, **pgd_args).generate(x, y=y),
    }


RUNNERS = {"keras_rse": _attacks_keras_rse, "keras_rse_bf16": _attacks_keras_rse_bf16,
           "cleverhans": _attacks_cleverhans,
           "foolbox": _attacks_foolbox, "art": _attacks_art}


def run_library(library, workdir, attack_names):
    """Times each attack of one library (in this process) and measures its strength."""
    import keras
    import numpy as np

    import keras_rse  # noqa: F401  pylint: disable=unused-import  (registers noise layers)

    cnn = keras.saving.load_model(os.path.join(workdir, "cnn.keras"), safe_mode=True)
    noisy = keras.saving.load_model(os.path.join(workdir, "noisy.keras"), safe_mode=True)
    noisy.ensemble_size = 10
    data = np.load(os.path.join(workdir, "data.npz"))
    x, y = data["x"].astype("float32"), data["y"]
    attacks = RUNNERS[library](cnn, noisy, x, y)
    rows = []
    for name in attack_names:
        attacked = noisy if name == "eot_pgd" else cnn
        try:
            if library == "art" and name == "cw":
                first = None  # ART's C&W runs in NumPy: nothing to trace, one run is enough
            else:
                start = time.perf_counter()
                attacks[name]()
                first = time.perf_counter() - start
            timings = []
            for _ in range(1 if name == "cw" else FLAGS.repeats):  # C&W: minutes per call
                start = time.perf_counter()
                x_adv = np.asarray(attacks[name]())
                timings.append(time.perf_counter() - start)
            seconds = float(np.median(timings))
        except Exception as error:  # a peer's bug must not hide the other rows
            row = {"library": library, "attack": name, "error": f"{type(error).__name__}: "
                   f"{str(error).strip().splitlines()[-1][:300]}"}
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        predictions = attacked.predict(x_adv, batch_size=256, verbose=0).argmax(1)
        row = {"library": library, "attack": name, "seconds": seconds, "first_call_s": first,
               "timed_calls": len(timings), "min_seconds": min(timings),
               "accuracy": float(np.mean(predictions == y)),
               "linf_max": float(np.abs(x_adv - x).max()),
               "in_bounds": bool(x_adv.min() >= 0 and x_adv.max() <= 1)}
        if name == "cw":
            l2 = np.linalg.norm((x_adv - x).reshape(len(x), -1), axis=1)
            fooled = predictions != y
            row["median_l2_successful"] = float(np.median(l2[fooled])) if fooled.any() else None
            row["success_rate"] = float(fooled.mean())
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


_PACKAGES = ["tensorflow", "keras", "cleverhans", "foolbox", "adversarial-robustness-toolbox",
             "tf-keras"]


def _versions(python):
    """Versions of TF, Keras and the peers in the interpreter that ran them."""
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for p in sys.argv[1:]:\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: out[p] = None\n"
            "print(json.dumps(out))")
    proc = subprocess.run([python, "-c", code, *_PACKAGES], capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def main(argv):
    del argv
    if FLAGS.library:
        run_library(FLAGS.library, FLAGS.workdir, FLAGS.attacks)
        return
    if not FLAGS.data_dir:
        raise app.UsageError("Give --data_dir or set KERAS_RSE_DATA_DIR.")
    prepare(FLAGS.workdir, FLAGS.data_dir, FLAGS.examples)
    path = os.path.join(FLAGS.workdir, "results.json")
    earlier = []
    if os.path.exists(path):  # rows of (library, attack) pairs not re-run are kept
        with open(path) as f:
            earlier = json.load(f)["rows"]
    rows, versions = [], _versions(FLAGS.python)
    for library in FLAGS.libraries:
        started = time.time()
        # CleverHans' C&W builds tf.keras optimizers: it needs the legacy Keras 2 package.
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1" if library == "cleverhans" else "0"}
        # stderr (TensorFlow's logs) goes to a file: a full pipe would block the child.
        with open(os.path.join(FLAGS.workdir, f"{library}.stderr.txt"), "w") as stderr:
            proc = subprocess.Popen(
                [FLAGS.python, __file__, f"--library={library}", f"--workdir={FLAGS.workdir}",
                 f"--attacks={','.join(FLAGS.attacks)}", f"--repeats={FLAGS.repeats}"],
                env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
            for line in proc.stdout:
                if line.startswith("{"):
                    rows.append(json.loads(line))
                    print(line, end="", flush=True)
                    # Saved after every row, so an interrupted run keeps what it measured.
                    _save(path, earlier, rows, versions)
            proc.wait()
        print(f"# {library}: {time.time() - started:.0f} s, exit code {proc.returncode}",
              flush=True)
        if proc.returncode:
            print(f"{library} failed; see {stderr.name}", file=sys.stderr)
    print(_table(_merge(earlier, rows)))


def _merge(earlier, rows):
    fresh = {(r["library"], r["attack"]) for r in rows}
    return [r for r in earlier if (r["library"], r["attack"]) not in fresh] + rows


def _save(path, earlier, rows, versions):
    with open(path + ".tmp", "w") as f:
        json.dump({"rows": _merge(earlier, rows), "versions": versions}, f, indent=2)
    os.replace(path + ".tmp", path)


def _table(rows):
    lines = ["| attack | library | seconds | accuracy | C&W median L2 | vs fastest peer |",
             "|---|---|---|---|---|---|"]
    for attack in dict.fromkeys(r["attack"] for r in rows):
        group = [r for r in rows if r["attack"] == attack]
        peers = [r["seconds"] for r in group
                 if not r["library"].startswith("keras_rse") and "seconds" in r]
        for r in group:
            if "error" in r:
                lines.append(f"| {attack} | {r['library']} | failed: {r['error'][:80]} | | | |")
                continue
            ratio = (f"{min(peers) / r['seconds']:.2f}x faster" if peers and
                     r["library"].startswith("keras_rse") else "")
            l2 = r.get("median_l2_successful")
            lines.append(f"| {attack} | {r['library']} | {r['seconds']:.2f} | {r['accuracy']:.3f}"
                         f" | {'' if l2 is None else f'{l2:.3f}'} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    app.run(main)
