"""``train/fit.py``: trains a defense or baseline in a workdir that a restart resumes."""

import json
import os
import sys
import time
import zipfile

from keras_rse._hardware import warn_if_slow_policy
from keras_rse.cli._flags import (
    FIT_CONFIG_FLAGS, FLAGS, RAT_DEFENSES, parse, refuse_arguments, versions)
from keras_rse.defenses import DEFENSES, RAT_NOISE


def _model_kwargs(defense):
    """Builder arguments for ``defense``: noise levels and placement, activation."""
    from keras_rse.defenses import network_kwargs

    return network_kwargs(defense, init_noise=FLAGS.init_noise, inner_noise=FLAGS.inner_noise,
                          seed=FLAGS.seed, ensemble_size=FLAGS.ensemble_size or 10)


def _defense_kwargs(defense):
    kwargs = dict(DEFENSES[defense][1], seed=FLAGS.seed,
                  ensemble_size=FLAGS.ensemble_size or 10)
    for flag, key in (("eps", "eps"), ("attack_step_size", "step_size"),
                      ("attack_steps", "steps")):
        if getattr(FLAGS, flag) is not None and defense in RAT_DEFENSES:
            kwargs[key] = getattr(FLAGS, flag)
    if defense == "distill":
        kwargs["temperature"] = FLAGS.temperature
    return kwargs


def _refuse_unused_flags(defense):
    """A flag the chosen defense ignores is an error, not a silent no-op."""
    used_by = {"eps": RAT_DEFENSES, "attack_step_size": RAT_DEFENSES,
               "attack_steps": RAT_DEFENSES, "temperature": {"distill"}}
    for flag, defenses in used_by.items():
        if FLAGS[flag].present and defense not in defenses:
            note = (" (fgsm_retrain draws eps from U(0.1, 0.3), RSE Table 1)"
                    if defense == "fgsm_retrain" and flag == "eps" else "")
            raise ValueError(f"Invalid combination: --{flag} is used only by --defense="
                             f"{'|'.join(sorted(defenses))}{note}. Received: "
                             f"{flag}={getattr(FLAGS, flag)!r} with defense={defense!r}")


# Settings that decide which data, network and optimiser a workdir's checkpoints belong to.
_RUN_IDENTITY = ("defense", "model", "dataset", "seed", "validation_size", "train_examples",
                 "batch_size", "recipe", "weight_decay_style")
# What a config.json written before a setting existed ran with.
_BEFORE_THE_FLAG = {"weight_decay_style": "decoupled"}
_NOT_SETTINGS = {"command", "verbose", "checkpoint_every", "data_dir", "workdir",
                 "earlier_starts"}


def _compare_with_earlier_start(config):
    """Checks this start's ``config`` against the workdir's ``config.json``, if any.

    Args:
        config: The settings of this start (flags and resolved defaults).

    Returns:
        ``(config, changed)``: the config to write, which keeps the earlier
        values of changed settings under ``earlier_starts``, and the list of
        changes as text (empty for a plain restart or a new workdir).

    Raises:
        ValueError: a setting of ``_RUN_IDENTITY`` differs: the checkpoints
            belong to another model, data split or data order.
    """
    path = os.path.join(FLAGS.workdir, "config.json")
    if not os.path.isfile(path):
        return config, []
    with open(path) as f:
        earlier = {**_BEFORE_THE_FLAG, **json.load(f)}
    # Keys an older config.json lacks are not compared (recorded by later versions only).
    differing = {key: earlier[key] for key, value in config.items()
                 if key not in _NOT_SETTINGS and key in earlier and earlier[key] != value}
    clashes = [f"{key}: {earlier[key]!r} there, {config[key]!r} now" for key in _RUN_IDENTITY
               if key in differing]
    # Without a checkpoint nothing belongs to the earlier settings (a start that failed on a
    # misspelled flag must not lock the workdir).
    if clashes and _has_checkpoint(FLAGS.workdir):
        raise ValueError(f"Invalid combination: --workdir={FLAGS.workdir} holds a run with other "
                         f"settings ({'; '.join(clashes)}). Pass another --workdir, or the "
                         f"workdir's settings to resume it. Received: workdir={FLAGS.workdir!r}")
    if not differing:
        return dict(config, earlier_starts=earlier.get("earlier_starts", [])), []
    changed = [f"{key} {value!r} -> {config[key]!r}" for key, value in differing.items()]
    starts = earlier.get("earlier_starts", []) + [differing]
    return dict(config, earlier_starts=starts), changed


def _check_epochs_against_checkpoints():
    """Refuses ``--epochs`` below what the workdir's checkpoints hold, before anything is written.

    Also a ``--average_from_epoch`` whose weight average the checkpoint does not
    hold. ``training.train`` refuses both too, but only after the data, the model
    and ``config.json``; read here from the checkpoint files alone, a refused
    start changes nothing in the workdir.
    """
    from keras_rse import training
    from keras_rse._train_callbacks import WeightAverage, check_average_covers

    for sub in ((), ("phase1",)):
        directory = os.path.join(FLAGS.workdir, *sub, "checkpoints")
        done_epochs, done_steps = training.TrainingCheckpoint.progress(directory)
        training.check_epochs_cover_checkpoint(FLAGS.epochs, done_epochs, done_steps,
                                               directory, name="--epochs")
    if FLAGS.average_from_epoch is not None:  # one phase only (_AVERAGING_DEFENSES)
        directory = os.path.join(FLAGS.workdir, "checkpoints")
        done_epochs, _ = training.TrainingCheckpoint.progress(directory)
        check_average_covers(FLAGS.average_from_epoch, done_epochs,
                             WeightAverage.count_in(directory), directory,
                             name="--average_from_epoch")


def _has_checkpoint(workdir):
    """Whether ``workdir`` (or its first phase) holds a training checkpoint."""
    return any(os.path.isfile(os.path.join(workdir, *sub, "checkpoints", "checkpoint"))
               for sub in ((), ("phase1",)))


def _lr_decay_at(recipe):
    """``--lr_decay_at`` as floats (None: the recipe's), refused by name if not ``recipe``'s."""
    from keras_rse import training

    if FLAGS.lr_decay_at is None:
        return None
    try:
        fractions = [float(f) for f in FLAGS.lr_decay_at]
    except ValueError:
        raise ValueError(f"Invalid value for flag `--lr_decay_at`. Expected comma-separated "
                         f"fractions such as 0.5,0.75,0.9. Received: "
                         f"lr_decay_at={','.join(FLAGS.lr_decay_at)!r}") from None
    return list(training.checked_decay_at(recipe, fractions, name="--lr_decay_at"))


def _build(defense, name, total_steps, recipe, **extra):
    """Creates and compiles the defense model (call inside the strategy scope)."""
    import keras

    from keras_rse import models, training
    from keras_rse.layers import LearnedNoise, noise_layers

    cls = DEFENSES[defense][0]
    network = models.create_model(name, **_model_kwargs(defense)).network
    model = cls(network, **{**_defense_kwargs(defense), **extra})
    soft_labels = defense == "distill" and extra.get("teacher") is not None
    loss = (keras.losses.CategoricalCrossentropy(from_logits=True) if soft_labels
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    metrics = ["categorical_accuracy"] if soft_labels else ["accuracy"]
    # LeRAT's learned noise scales stay out of the coupled L2 (as in PNI, which LeRAT
    # follows): weight decay would pull them towards no noise.
    learned_noise = [weight for layer in noise_layers(network)
                     if isinstance(layer, LearnedNoise) for weight in layer.trainable_weights]
    optimizer = training.make_optimizer(
        recipe, total_steps, FLAGS.learning_rate, FLAGS.weight_decay, _lr_decay_at(recipe),
        weight_decay_style=FLAGS.weight_decay_style, no_decay_variables=learned_noise)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


def _resolve_run():
    """Checks the flags against each other; returns ``(defense, model, dataset, recipe)``.

    Also fills ``--workdir`` when not given: ``runs/<dataset>_<model>_<defense>``, as the
    presets' names, so that the same command finds the run again.
    """
    defense = FLAGS.defense
    name = FLAGS.model or ("wide_resnet16_4" if defense in RAT_DEFENSES else "vgg16")
    dataset = FLAGS.dataset or "cifar10"
    recipe = FLAGS.recipe or ("rat" if defense in RAT_DEFENSES else "rse")
    if defense in RAT_NOISE and not name.startswith("wide_resnet"):
        raise ValueError(f"Invalid value for flag `--model`. Expected a wide_resnet model for "
                         f"--defense={defense} (RAT noise placement). Received: model={name!r}")
    _refuse_unused_flags(defense)
    if FLAGS.init_weights and defense in _TWO_PHASE_DEFENSES:
        raise ValueError(f"Invalid value for flag `--init_weights`. Expected no initial weights "
                         f"for the two-phase defense {defense!r} (which phase would start from "
                         f"them?). Received: init_weights={FLAGS.init_weights!r}")
    if FLAGS.average_from_epoch is not None:
        _check_weight_averaging(defense)
    _lr_decay_at(recipe)  # refused here, before any data loads
    if not FLAGS.workdir:
        FLAGS.workdir = os.path.join("runs", f"{dataset}_{name}_{defense}")
        print(f"--workdir not given: the run writes to {FLAGS.workdir} (starting the same "
              f"command again resumes it).", flush=True)
    return defense, name, dataset, recipe


# Defenses fit trains in two phases (a plain model first, then the defense from it).
_TWO_PHASE_DEFENSES = ("fgsm_retrain", "distill")

# Defenses whose weight average fit can take: one phase (the average covers one run)
# and training on the given images, which the batch-norm recomputation sees (the
# others train on adversarial or noise-augmented images: the library refuses them too).
_AVERAGING_DEFENSES = tuple(
    name for name, (cls, _, _) in DEFENSES.items()
    if name not in _TWO_PHASE_DEFENSES and cls.trains_on_given_images)


def _check_weight_averaging(defense):
    """Refuses ``--average_from_epoch`` where the average's batch norms would be wrong."""
    if defense not in _AVERAGING_DEFENSES:
        raise ValueError(f"Invalid combination: --average_from_epoch is for --defense="
                         f"{'|'.join(_AVERAGING_DEFENSES)} (one training phase, on the given "
                         f"images: the average's batch-norm statistics are recomputed on "
                         f"clean training images). Received: "
                         f"average_from_epoch={FLAGS.average_from_epoch} with "
                         f"defense={defense!r}")
    if FLAGS.average_from_epoch > FLAGS.epochs:
        raise ValueError(f"Invalid value for flag `--average_from_epoch`. Expected an epoch in "
                         f"[1, {FLAGS.epochs}] (--epochs). Received: "
                         f"average_from_epoch={FLAGS.average_from_epoch}")
    if FLAGS.distribute != "none":
        raise ValueError(f"Invalid combination: --average_from_epoch runs on one replica "
                         f"only. Received: average_from_epoch={FLAGS.average_from_epoch} with "
                         f"distribute={FLAGS.distribute!r}")


def _set_up_process():
    """Logical CPUs, dtype policy and seeds: before any TensorFlow op runs."""
    import keras

    from keras_rse import distribute

    if FLAGS.cpu_devices:
        distribute.split_cpu(FLAGS.cpu_devices)
    if FLAGS.mixed_precision:
        warn_if_slow_policy("mixed_bfloat16", "--mixed_precision")
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(FLAGS.seed)


def _write_config(config, changed):
    """The chief's ``config.json`` (after a warning when the settings changed)."""
    from keras_rse import training

    if changed:
        moved = (" The learning-rate schedule's warm-up and decay points are fractions of all "
                 "steps: they move with --epochs." if any(c.startswith("epochs ")
                                                          for c in changed) else "")
        print(f"Warning: {FLAGS.workdir} was started with other settings "
              f"({', '.join(changed)}); this run continues its checkpoint, if any, with the "
              f"new ones (the earlier values stay in config.json's earlier_starts).{moved}",
              flush=True)
    training.atomic_write_text(os.path.join(FLAGS.workdir, "config.json"),
                               json.dumps(config, indent=2))


def _train_defense(defense, name, recipe, strategy, train, validation, fit_args):
    """Builds and trains the defense (two phases for fgsm_retrain and distill).

    Returns:
        ``(model, resumed_from_epoch, resumed_from_step, init_weights record)``.
    """
    from keras_rse import training

    total_steps = FLAGS.epochs * -(-len(train[0]) // fit_args["batch_size"])
    extra = {}
    if defense in _TWO_PHASE_DEFENSES:
        # Phase 1: ordinary training (the pre-trained model / the teacher).
        first = "none" if defense == "fgsm_retrain" else "distill"
        with strategy.scope():
            phase1 = _build(first, name, total_steps, recipe)
        training.train(phase1, *train, *validation,
                       workdir=os.path.join(FLAGS.workdir, "phase1"), **fit_args)
        extra = {"teacher": phase1.network} if defense == "distill" else {}
    with strategy.scope():
        model = _build(defense, name, total_steps, recipe, **extra)
        if defense == "fgsm_retrain":
            model.network.set_weights(phase1.network.get_weights())
    initial = _initial_weights(model, strategy, fit_args["chief"])
    resumed_from, resumed_step, _ = training.train(
        model, *train, *validation, workdir=FLAGS.workdir,
        average_from_epoch=FLAGS.average_from_epoch, **fit_args)
    return model, resumed_from, resumed_step, initial


def _run_fit():
    from keras_rse import data, distribute, training
    from keras_rse._train_callbacks import WeightAverage

    defense, name, dataset, recipe = _resolve_run()
    _set_up_process()
    batch_size = FLAGS.batch_size or training.RECIPES[recipe]["batch_size"]
    ensemble_size = FLAGS.ensemble_size or 10
    config = {k: v for k, v in FLAGS.flag_values_dict().items() if k in FIT_CONFIG_FLAGS}
    config.update(model=name, recipe=recipe, batch_size=batch_size, dataset=dataset,
                  ensemble_size=ensemble_size, command=" ".join(sys.argv))
    config, changed = _compare_with_earlier_start(config)  # before the data: fail fast
    _check_epochs_against_checkpoints()
    x, y = data.load_split(dataset, "train", FLAGS.data_dir, limit=FLAGS.train_examples)
    train, validation = data.train_validation_split(x, y, FLAGS.validation_size, seed=FLAGS.seed)
    os.makedirs(FLAGS.workdir, exist_ok=True)
    strategy = distribute.get_strategy(FLAGS.distribute)
    chief = distribute.is_chief(strategy)  # only the chief writes shared files
    if chief:
        _write_config(config, changed)
    fit_args = dict(epochs=FLAGS.epochs, batch_size=batch_size, seed=FLAGS.seed,
                    augmentation=FLAGS.augment, verbose=FLAGS.verbose if chief else 0,
                    chief=chief, task=distribute.task_label(strategy),
                    checkpoint_every=FLAGS.checkpoint_every)
    started = time.time()
    model, resumed_from, resumed_step, initial = _train_defense(
        defense, name, recipe, strategy, train, validation, fit_args)
    summary = {
        "defense": defense, "model": name, "dataset": dataset, "epochs": FLAGS.epochs,
        "resumed_from_epoch": resumed_from, "resumed_from_step": resumed_step,
        "train_examples": len(train[0]), "validation_examples": len(validation[0]),
        "seed": FLAGS.seed, "wall_seconds_this_run": round(time.time() - started, 1),
        "validation_accuracy_single_pass": training.single_pass_accuracy(model, *validation),
        "validation_accuracy_ensemble": training.ensemble_accuracy(model, *validation,
                                                                   ensemble_size),
        "ensemble_size": ensemble_size, "command": " ".join(sys.argv),
        "replicas": strategy.num_replicas_in_sync, "distribute": FLAGS.distribute,
        "mixed_precision": FLAGS.mixed_precision, "init_weights": initial,
        "weight_average": None if FLAGS.average_from_epoch is None else {
            "first_epoch": FLAGS.average_from_epoch,
            "epochs_averaged": WeightAverage.count_in(os.path.join(FLAGS.workdir,
                                                                   "checkpoints")),
            "batch_norm_recomputed_on": len(train[0])},
        "versions": versions(),
    }
    if not chief:
        return summary
    summary = training.save_artifacts(model, FLAGS.workdir, summary)
    print(json.dumps(summary, indent=2))
    return summary


def _initial_weights(model, strategy, chief):
    """Applies ``--init_weights`` to a new run; returns the run's record of them.

    Only a run without a checkpoint loads them (a resume continues from its
    checkpoint, whatever the flag says now). The chief records what was loaded
    in ``<workdir>/init_weights.json``, so every later start reports it; a start
    without checkpoint and without the flag removes an earlier start's record.

    Args:
        model: The compiled defense model (its ``network`` receives the weights).
        strategy: The strategy the model was built under (the weights are
            assigned in its scope).
        chief: Whether this worker writes the run's files.

    Returns:
        ``{"source", "file", "sha256"}`` or None (the run started from a random
        initialisation).
    """
    import tensorflow as tf

    from keras_rse import training, zoo

    record_path = os.path.join(FLAGS.workdir, "init_weights.json")
    if tf.train.latest_checkpoint(os.path.join(FLAGS.workdir, "checkpoints")):
        if FLAGS.init_weights:
            print(f"--init_weights={FLAGS.init_weights} not loaded: the run resumes from its "
                  f"checkpoint in {FLAGS.workdir}.", flush=True)
        if os.path.isfile(record_path):
            with open(record_path) as f:
                return json.load(f)
        return None
    if not FLAGS.init_weights:
        if chief and os.path.isfile(record_path):
            # Left by an earlier start that never reached its first checkpoint: this
            # run starts from a random initialisation, and its resumes must say so.
            os.remove(record_path)
        return None
    try:
        with strategy.scope():
            path, sha256 = zoo.load_weights(model.network, FLAGS.init_weights)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"Invalid value for flag `--init_weights`. Expected a zoo preset with "
                         f"published weights, a .npz of the zoo or a .weights.h5 written by "
                         f"fit, matching the model ({error}). Received: "
                         f"init_weights={FLAGS.init_weights!r}") from error
    record = {"source": FLAGS.init_weights, "file": os.path.abspath(path), "sha256": sha256}
    print(f"Initial weights: {path} (sha256 {sha256}).", flush=True)
    if chief:
        training.atomic_write_text(record_path, json.dumps(record, indent=2))
    return record


def fit_main(argv: list[str]) -> dict:
    """Parses ``argv`` (``argv[0]`` is the program name) and trains; returns the summary."""
    parse(argv)
    return _run_fit()


def fit_app(argv: list[str]) -> None:
    """`absl.app.run` target of ``train/fit.py`` (flags already parsed)."""
    refuse_arguments(argv)
    _run_fit()
