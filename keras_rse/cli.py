"""Command-line entry points; the scripts in train/ only call these.

Importing this module defines absl flags, so the package does not import it.
"""

import json
import os
import sys
import time

from absl import flags

from keras_rse.defenses import DEFENSES

FLAGS = flags.FLAGS
flags.DEFINE_enum("defense", "rse", sorted(DEFENSES), "Defense (training algorithm).")
flags.DEFINE_string("model", None, "Registered model name; default per defense "
                    "(vgg16 for rse/none/fgsm_retrain/distill/brelu, wide_resnet16_4 for "
                    "at/rat/lerat).")
flags.DEFINE_enum("dataset", "cifar10", ["cifar10", "stl10"], "Dataset.")
flags.DEFINE_string("data_dir", None, "Directory with <dataset>_train.npz / _test.npz; "
                    "default $KERAS_RSE_DATA_DIR, else tensorflow-datasets.")
flags.DEFINE_integer("epochs", 1, "Training epochs (per phase for two-phase defenses).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", None, "Global batch size; default from the recipe.",
                     lower_bound=1)
flags.DEFINE_enum("recipe", None, ["rse", "rat"], "Optimiser recipe; default rat for "
                  "at/rat/lerat, else rse.")
flags.DEFINE_float("learning_rate", None, "Initial learning rate; default from the recipe.")
flags.DEFINE_float("weight_decay", None, "Weight decay; default from the recipe.")
flags.DEFINE_float("init_noise", None, "Noise before the first conv (RAT: on its output).")
flags.DEFINE_float("inner_noise", None, "Noise before the other convs.")
flags.DEFINE_float("eps", None, "Adversarial budget in [0, 1] pixel units (at, rat, lerat).")
flags.DEFINE_float("attack_step_size", None, "PGD step size for adversarial training.")
flags.DEFINE_integer("attack_steps", None, "PGD steps for adversarial training.")
flags.DEFINE_float("temperature", 40.0, "Distillation temperature.")
flags.DEFINE_integer("ensemble_size", 10, "Draws averaged by predict.", lower_bound=1)
flags.DEFINE_integer("validation_size", 5000, "Training images held out for validation.",
                     lower_bound=1)
flags.DEFINE_integer("train_examples", None, "Use only the first N training images.")
flags.DEFINE_boolean("augment", True, "Random crop (4-pixel padding) and flip.")
flags.DEFINE_integer("seed", 0, "Seed of weights, noise, data order and attacks.")
flags.DEFINE_string("workdir", None, "Output directory; the same workdir resumes a run.")
flags.DEFINE_enum("distribute", "none", ["none", "mirrored", "multiworker"],
                  "tf.distribute strategy.")
flags.DEFINE_boolean("mixed_precision", False, "Train with the mixed_bfloat16 policy.")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (to run "
                     "--distribute=mirrored without accelerators); 0 leaves it whole.",
                     lower_bound=0)
flags.DEFINE_integer("verbose", 1, "Keras progress output: 0 silent, 1 bar, 2 one line/epoch.")

RAT_DEFENSES = {"at", "rat", "lerat"}


def _model_kwargs(defense):
    """Builder arguments for ``defense``: noise levels and placement, activation."""
    kwargs = {"seed": FLAGS.seed, "ensemble_size": FLAGS.ensemble_size}
    noisy = DEFENSES[defense][2]
    if defense in ("rat", "lerat"):
        kwargs.update(noise_placement="rat", init_noise=1.0, inner_noise=0.0,
                      normalization="symmetric")
        if defense == "lerat":
            kwargs["noise_type"] = "learned"
    elif not noisy:
        kwargs.update(init_noise=0.0, inner_noise=0.0)
    if defense == "brelu":
        kwargs["activation"] = "brelu"
    for name in ("init_noise", "inner_noise"):
        if getattr(FLAGS, name) is not None:
            kwargs[name] = getattr(FLAGS, name)
    return kwargs


def _defense_kwargs(defense):
    kwargs = dict(DEFENSES[defense][1], seed=FLAGS.seed, ensemble_size=FLAGS.ensemble_size)
    for flag, key in (("eps", "eps"), ("attack_step_size", "step_size"),
                      ("attack_steps", "steps")):
        if getattr(FLAGS, flag) is not None and defense in RAT_DEFENSES:
            kwargs[key] = getattr(FLAGS, flag)
    if defense == "distill":
        kwargs["temperature"] = FLAGS.temperature
    return kwargs


def _build(defense, name, total_steps, recipe, **extra):
    """Creates and compiles the defense model (call inside the strategy scope)."""
    import keras

    from keras_rse import models, training

    cls = DEFENSES[defense][0]
    network = models.create_model(name, **_model_kwargs(defense)).network
    model = cls(network, **{**_defense_kwargs(defense), **extra})
    soft_labels = defense == "distill" and extra.get("teacher") is not None
    loss = (keras.losses.CategoricalCrossentropy(from_logits=True) if soft_labels
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    metrics = ["categorical_accuracy"] if soft_labels else ["accuracy"]
    model.compile(optimizer=training.make_optimizer(recipe, total_steps, FLAGS.learning_rate,
                                                    FLAGS.weight_decay),
                  loss=loss, metrics=metrics)
    return model


def _run_fit():
    import keras

    from keras_rse import data, distribute, training

    if not FLAGS.workdir:
        raise ValueError("Invalid value for flag `--workdir`. Expected a directory path. "
                         "Received: workdir=None")
    defense = FLAGS.defense
    name = FLAGS.model or ("wide_resnet16_4" if defense in RAT_DEFENSES else "vgg16")
    recipe = FLAGS.recipe or ("rat" if defense in RAT_DEFENSES else "rse")
    batch_size = FLAGS.batch_size or training.RECIPES[recipe]["batch_size"]
    if defense in ("rat", "lerat") and not name.startswith("wide_resnet"):
        raise ValueError(f"Invalid value for flag `--model`. Expected a wide_resnet model for "
                         f"--defense={defense} (RAT noise placement). Received: model={name!r}")
    if FLAGS.cpu_devices:
        distribute.split_cpu(FLAGS.cpu_devices)  # before any TensorFlow op runs
    if FLAGS.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(FLAGS.seed)
    x, y = data.load_split(FLAGS.dataset, "train", FLAGS.data_dir, limit=FLAGS.train_examples)
    (x_train, y_train), (x_val, y_val) = data.train_validation_split(
        x, y, FLAGS.validation_size, seed=FLAGS.seed)
    os.makedirs(FLAGS.workdir, exist_ok=True)
    config = {k: v for k, v in FLAGS.flag_values_dict().items() if k in _OUR_FLAGS}
    config.update(model=name, recipe=recipe, batch_size=batch_size, command=" ".join(sys.argv))
    training.atomic_write_text(os.path.join(FLAGS.workdir, "config.json"),
                               json.dumps(config, indent=2))
    strategy = distribute.get_strategy(FLAGS.distribute)
    total_steps = FLAGS.epochs * -(-len(x_train) // batch_size)
    fit_args = dict(epochs=FLAGS.epochs, batch_size=batch_size, seed=FLAGS.seed,
                    augmentation=FLAGS.augment, verbose=FLAGS.verbose)
    started = time.time()
    extra = {}
    if defense in ("fgsm_retrain", "distill"):
        # Phase 1: ordinary training (the pre-trained model / the teacher).
        first = "none" if defense == "fgsm_retrain" else "distill"
        with strategy.scope():
            phase1 = _build(first, name, total_steps, recipe)
        training.train(phase1, x_train, y_train, x_val, y_val,
                       workdir=os.path.join(FLAGS.workdir, "phase1"), **fit_args)
        extra = {"teacher": phase1.network} if defense == "distill" else {}
    with strategy.scope():
        model = _build(defense, name, total_steps, recipe, **extra)
        if defense == "fgsm_retrain":
            model.network.set_weights(phase1.network.get_weights())
    resumed_from, _ = training.train(model, x_train, y_train, x_val, y_val,
                                     workdir=FLAGS.workdir, **fit_args)
    summary = {
        "defense": defense, "model": name, "dataset": FLAGS.dataset, "epochs": FLAGS.epochs,
        "resumed_from_epoch": resumed_from, "train_examples": len(x_train),
        "validation_examples": len(x_val), "seed": FLAGS.seed,
        "wall_seconds_this_run": round(time.time() - started, 1),
        "validation_accuracy_single_pass": training.single_pass_accuracy(model, x_val, y_val),
        "validation_accuracy_ensemble": training.ensemble_accuracy(
            model, x_val, y_val, FLAGS.ensemble_size),
        "ensemble_size": FLAGS.ensemble_size, "command": " ".join(sys.argv),
        "replicas": strategy.num_replicas_in_sync, "distribute": FLAGS.distribute,
        "mixed_precision": FLAGS.mixed_precision,
        "versions": _versions(),
    }
    summary = training.save_artifacts(model, FLAGS.workdir, summary)
    print(json.dumps(summary, indent=2))
    return summary


def _versions():
    import keras
    import tensorflow as tf

    import keras_rse

    return {"keras_rse": keras_rse.__version__, "keras": keras.__version__,
            "tensorflow": tf.__version__}


_OUR_FLAGS = {flag.name for flag in FLAGS.get_flags_for_module(__name__)}


def fit_main(argv):
    """Parses ``argv`` (``argv[0]`` is the program name) and trains; returns the summary."""
    FLAGS.unparse_flags()
    FLAGS(list(argv))
    return _run_fit()


def fit_app(argv):
    """`absl.app.run` target of ``train/fit.py`` (flags already parsed)."""
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    _run_fit()
