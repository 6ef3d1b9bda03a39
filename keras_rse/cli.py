"""Command-line entry points; the scripts in train/ only call these.

``train/fit.py`` -> `fit_app`, ``train/evaluate.py`` -> `evaluate_app`,
``train/export.py`` -> `export_app` (`fit_main` / `evaluate_main` take an argv,
for tests and notebooks). The flags are shared (absl keeps one
global set): each flag's help says which script reads it. Importing this
module defines the flags, so the package does not import it.
"""

import json
import os
import sys
import time
import zipfile

from absl import flags

from keras_rse._hardware import warn_if_slow_policy
from keras_rse.defenses import DEFENSES, RAT_NOISE

FLAGS = flags.FLAGS
flags.DEFINE_enum("defense", "rse", sorted(DEFENSES), "Defense (training algorithm).")
flags.DEFINE_string("model", None, "fit: registered model name; default per defense "
                    "(vgg16 for rse/none/fgsm_retrain/distill/brelu, wide_resnet16_4 for "
                    "at/rat/lerat). evaluate/export: a zoo preset name or a .keras file.")
flags.DEFINE_enum("dataset", None, ["cifar10", "stl10"], "Dataset; default cifar10 (evaluate: "
                  "the preset's).")
flags.DEFINE_string("data_dir", None, "Directory with <dataset>_train.npz / _test.npz; "
                    "default $KERAS_RSE_DATA_DIR, else tensorflow-datasets.")
flags.DEFINE_integer("epochs", 1, "Training epochs (per phase for two-phase defenses).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", None, "Global batch size; fit: default from the recipe; "
                     "evaluate: attack batch, default 128, also the unit a killed evaluation "
                     "keeps.",
                     lower_bound=1)
flags.DEFINE_enum("recipe", None, ["rse", "rat"], "Optimiser recipe; default rat for "
                  "at/rat/lerat, else rse.")
flags.DEFINE_float("learning_rate", None, "Initial learning rate; default from the recipe.")
flags.DEFINE_float("weight_decay", None, "Weight decay; default from the recipe.")
flags.DEFINE_list("lr_decay_at", None, "Learning-rate decay points as fractions of all steps "
                  "(e.g. 0.5,0.75,0.9 for rat); default from the recipe.")
flags.DEFINE_float("init_noise", None, "Noise before the first conv (RAT: on its output).")
flags.DEFINE_float("inner_noise", None, "Noise before the other convs.")
flags.DEFINE_float("eps", None, "Adversarial budget in [0, 1] pixel units (at, rat, lerat).")
flags.DEFINE_float("attack_step_size", None, "PGD step size for adversarial training.")
flags.DEFINE_integer("attack_steps", None, "PGD steps for adversarial training.")
flags.DEFINE_float("temperature", 40.0, "Distillation temperature.")
flags.DEFINE_integer("ensemble_size", None, "Draws averaged by predict; default 10 (evaluate: "
                     "the preset's).", lower_bound=1)
flags.DEFINE_integer("validation_size", 5000, "Training images held out for validation.",
                     lower_bound=1)
flags.DEFINE_integer("train_examples", None, "Use only the first N training images.")
flags.DEFINE_boolean("augment", True, "Random crop (4-pixel padding) and flip.")
flags.DEFINE_integer("seed", 0, "Seed of weights, noise, data order and attacks.")
flags.DEFINE_string("workdir", None, "Output directory; the same workdir resumes a run. "
                    "Default runs/<dataset>_<model>_<defense>.")
flags.DEFINE_enum("distribute", "none", ["none", "mirrored", "multiworker"],
                  "tf.distribute strategy.")
flags.DEFINE_boolean("mixed_precision", False, "Train with the mixed_bfloat16 policy (fast "
                     "on GPUs and AMX / AVX512-BF16 CPUs, ~10x slower on CPUs without them: "
                     "a warning says so).")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (to run "
                     "--distribute=mirrored without accelerators); 0 leaves it whole.",
                     lower_bound=0)
flags.DEFINE_integer("verbose", 1, "Keras progress output: 0 silent, 1 bar, 2 one line/epoch.")
flags.DEFINE_string("init_weights", None, "fit: start from these weights instead of a random "
                    "initialisation (continued training, fine-tuning): a zoo preset with "
                    "published weights (sha256 verified), a .npz in the zoo format, or a "
                    ".weights.h5 written by fit. A checkpoint in --workdir (resume) takes "
                    "precedence.")
flags.DEFINE_integer("checkpoint_every", 100, "fit: also checkpoint every N steps within an "
                     "epoch, so a killed run loses at most N steps (0: at epoch ends only).",
                     lower_bound=0)

RAT_DEFENSES = {"at", "rat", "lerat"}


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


# Settings that decide which data and which network a workdir's checkpoints belong to.
_RUN_IDENTITY = ("defense", "model", "dataset", "seed", "validation_size", "train_examples",
                 "batch_size", "recipe")
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
        earlier = json.load(f)
    # Keys an older config.json lacks are not compared (recorded by later versions only).
    differing = {key: earlier[key] for key, value in config.items()
                 if key not in _NOT_SETTINGS and key in earlier and earlier[key] != value}
    clashes = [f"{key}: {earlier[key]!r} there, {config[key]!r} now" for key in _RUN_IDENTITY
               if key in differing]
    if clashes:
        raise ValueError(f"Invalid combination: --workdir={FLAGS.workdir} holds a run with other "
                         f"settings ({'; '.join(clashes)}). Pass another --workdir, or the "
                         f"workdir's settings to resume it. Received: workdir={FLAGS.workdir!r}")
    if not differing:
        return dict(config, earlier_starts=earlier.get("earlier_starts", [])), []
    changed = [f"{key} {value!r} -> {config[key]!r}" for key, value in differing.items()]
    starts = earlier.get("earlier_starts", []) + [differing]
    return dict(config, earlier_starts=starts), changed


def _lr_decay_at():
    """``--lr_decay_at`` as floats (None: the recipe's), refused by name if not numbers."""
    if FLAGS.lr_decay_at is None:
        return None
    try:
        return [float(f) for f in FLAGS.lr_decay_at]
    except ValueError:
        raise ValueError(f"Invalid value for flag `--lr_decay_at`. Expected comma-separated "
                         f"fractions such as 0.5,0.75,0.9. Received: "
                         f"lr_decay_at={','.join(FLAGS.lr_decay_at)!r}") from None


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
    decay_at = _lr_decay_at()
    model.compile(optimizer=training.make_optimizer(recipe, total_steps, FLAGS.learning_rate,
                                                    FLAGS.weight_decay, decay_at),
                  loss=loss, metrics=metrics)
    return model


def _run_fit():
    import keras

    from keras_rse import data, distribute, training

    defense = FLAGS.defense
    name = FLAGS.model or ("wide_resnet16_4" if defense in RAT_DEFENSES else "vgg16")
    dataset = FLAGS.dataset or "cifar10"
    default_workdir = not FLAGS.workdir
    if default_workdir:
        # <dataset>_<model>_<defense>, as the presets' names: the same command finds it again.
        FLAGS.workdir = os.path.join("runs", f"{dataset}_{name}_{defense}")
    recipe = FLAGS.recipe or ("rat" if defense in RAT_DEFENSES else "rse")
    batch_size = FLAGS.batch_size or training.RECIPES[recipe]["batch_size"]
    if defense in RAT_NOISE and not name.startswith("wide_resnet"):
        raise ValueError(f"Invalid value for flag `--model`. Expected a wide_resnet model for "
                         f"--defense={defense} (RAT noise placement). Received: model={name!r}")
    _refuse_unused_flags(defense)
    if FLAGS.init_weights and defense in ("fgsm_retrain", "distill"):
        raise ValueError(f"Invalid value for flag `--init_weights`. Expected no initial weights "
                         f"for the two-phase defense {defense!r} (which phase would start from "
                         f"them?). Received: init_weights={FLAGS.init_weights!r}")
    if default_workdir:
        print(f"--workdir not given: the run writes to {FLAGS.workdir} (starting the same "
              f"command again resumes it).", flush=True)
    if FLAGS.cpu_devices:
        distribute.split_cpu(FLAGS.cpu_devices)  # before any TensorFlow op runs
    if FLAGS.mixed_precision:
        warn_if_slow_policy("mixed_bfloat16", "--mixed_precision")
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(FLAGS.seed)
    ensemble_size = FLAGS.ensemble_size or 10
    config = {k: v for k, v in FLAGS.flag_values_dict().items() if k in _OUR_FLAGS}
    config.update(model=name, recipe=recipe, batch_size=batch_size, dataset=dataset,
                  ensemble_size=ensemble_size, command=" ".join(sys.argv))
    config, changed = _compare_with_earlier_start(config)  # before the data: fail fast
    x, y = data.load_split(dataset, "train", FLAGS.data_dir, limit=FLAGS.train_examples)
    (x_train, y_train), (x_val, y_val) = data.train_validation_split(
        x, y, FLAGS.validation_size, seed=FLAGS.seed)
    os.makedirs(FLAGS.workdir, exist_ok=True)
    strategy = distribute.get_strategy(FLAGS.distribute)
    chief = distribute.is_chief(strategy)  # only the chief writes shared files
    if chief:
        if changed:
            print(f"Warning: {FLAGS.workdir} was started with other settings "
                  f"({', '.join(changed)}); this run continues its checkpoint, if any, with the "
                  f"new ones (the earlier values stay in config.json's earlier_starts).",
                  flush=True)
        training.atomic_write_text(os.path.join(FLAGS.workdir, "config.json"),
                                   json.dumps(config, indent=2))
    total_steps = FLAGS.epochs * -(-len(x_train) // batch_size)
    fit_args = dict(epochs=FLAGS.epochs, batch_size=batch_size, seed=FLAGS.seed,
                    augmentation=FLAGS.augment, verbose=FLAGS.verbose if chief else 0,
                    chief=chief, task=distribute.task_label(strategy),
                    checkpoint_every=FLAGS.checkpoint_every)
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
    initial = _initial_weights(model, strategy, chief)
    resumed_from, resumed_step, _ = training.train(model, x_train, y_train, x_val, y_val,
                                                   workdir=FLAGS.workdir, **fit_args)
    summary = {
        "defense": defense, "model": name, "dataset": dataset, "epochs": FLAGS.epochs,
        "resumed_from_epoch": resumed_from, "resumed_from_step": resumed_step,
        "train_examples": len(x_train),
        "validation_examples": len(x_val), "seed": FLAGS.seed,
        "wall_seconds_this_run": round(time.time() - started, 1),
        "validation_accuracy_single_pass": training.single_pass_accuracy(model, x_val, y_val),
        "validation_accuracy_ensemble": training.ensemble_accuracy(
            model, x_val, y_val, ensemble_size),
        "ensemble_size": ensemble_size, "command": " ".join(sys.argv),
        "replicas": strategy.num_replicas_in_sync, "distribute": FLAGS.distribute,
        "mixed_precision": FLAGS.mixed_precision, "init_weights": initial,
        "versions": _versions(),
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
    in ``<workdir>/init_weights.json``, so every later start reports it.

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


def _versions():
    import keras
    import tensorflow as tf

    import keras_rse

    return {"keras_rse": keras_rse.__version__, "keras": keras.__version__,
            "tensorflow": tf.__version__}


# Flags recorded in a training run's config.json (the evaluation flags follow).
_OUR_FLAGS = {flag.name for flag in FLAGS.get_flags_for_module(__name__)}

flags.DEFINE_list("suite", ["quick"], "evaluate: suites to run (quick, rse_table2, "
                  "rat_table2, apgd_rand).")
flags.DEFINE_list("sweeps", [], "evaluate: sweeps to plot (eps, c, eot, ensemble).")
flags.DEFINE_integer("n_examples", 100, "evaluate: the first N test images are attacked.",
                     lower_bound=1)
flags.DEFINE_integer("n_clean", 1000, "evaluate: the first N test images give clean accuracy.",
                     lower_bound=1)
flags.DEFINE_list("ensemble_sizes", ["1", "10", "50"], "evaluate: ensemble sizes for clean "
                  "accuracy.")
flags.DEFINE_integer("eot_samples", None, "evaluate: EOT draws per attack step; default the "
                     "suite's (10; rat_table2 50; apgd_rand 20).", lower_bound=1)
flags.DEFINE_integer("cw_steps", None, "evaluate: override of the C&W iterations.",
                     lower_bound=1)
flags.DEFINE_boolean("force_no_eot", False, "evaluate: allow --eot_samples=1 on a randomized "
                     "model (the report says so; no card is written).")
flags.DEFINE_string("baseline", None, "evaluate: a second model (preset or .keras) evaluated "
                    "side by side, e.g. cifar10_vgg16.")
flags.DEFINE_string("transfer_from", None, "evaluate: surrogate of the transfer diagnostic "
                    "(preset or .keras); default the model with its noise off.")
flags.DEFINE_string("weights", "default", "evaluate/export: 'default' (the preset's verified "
                    "file) or a weights file (.npz / .weights.h5) of the preset's architecture, "
                    "e.g. a retrained candidate (evaluate: no card is written from it).")
flags.DEFINE_string("output_dir", None, "evaluate: report directory; default "
                    "reports/<model>.")
flags.DEFINE_boolean("write_card", False, "evaluate: write zoo/cards/<preset>.json and "
                     "regenerate zoo/README.md (published weights, EOT on, diagnostics run).")
flags.DEFINE_string("zoo_dir", None, "evaluate/export: the zoo folder; default the source "
                    "checkout's zoo/.")
flags.DEFINE_boolean("diagnostics", True, "evaluate: run the sanity checks (without them "
                     "the report warns and no card can be written).")
flags.DEFINE_enum("attack_policy", None, ["mixed_bfloat16", "mixed_float16"],
                  "evaluate: FGSM/PGD/APGD follow the gradients of a copy computing in this "
                  "precision (bfloat16 is much cheaper on AMX CPUs); accuracies are still "
                  "judged on the float32 model, and C&W always attacks the float32 model "
                  "(it lost strength in bfloat16). Default: attack the model as loaded.")
flags.DEFINE_boolean("resume", True, "evaluate: keep finished parts and attack batches in "
                     "<output_dir>/.partial and read them back when the same evaluation "
                     "runs again (off under "
                     "--distribute=multiworker: workers may not share a disk).")
flags.DEFINE_integer("n_diagnostic", 64, "evaluate: images used by the sanity checks.",
                     lower_bound=1)
flags.DEFINE_string("source", None, "export: the trained .keras or .weights.h5 file.")


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


def _load_model(spec, strategy, weights="default"):
    """Loads a preset or a .keras file; returns ``(model, info)`` for the report."""
    from keras_rse import zoo
    from keras_rse._io import sha256_of

    with strategy.scope():
        if spec.endswith(".keras"):
            model = zoo.load(spec)
            info = {"model": os.path.basename(spec), "source": os.path.abspath(spec),
                    "weights_sha256": sha256_of(spec), "preset": None}
        else:
            preset = zoo.get_preset(spec)
            if weights == "default":
                # weights_path verified the file against the preset's sha256: the report
                # reuses that value instead of hashing the 30 MB file once more.
                path = zoo.weights_path(spec)
                sha256 = preset["weights"]["sha256"]
                model = zoo.load(spec, weights=path)
            else:
                # A candidate of the preset's architecture (a retrained model before it is
                # published): the user named the file, so it is not held to the published
                # sha256; the report records its own, and --write_card refuses it.
                model = zoo.load(spec, weights=None)
                path, sha256 = zoo.load_weights(model.network, weights)
            info = {"model": spec, "source": f"zoo preset {spec}", "preset": spec,
                    "dataset": preset["dataset"], "weights_file": os.path.abspath(path),
                    "weights_sha256": sha256}
    if FLAGS.ensemble_size:
        model.ensemble_size = FLAGS.ensemble_size
    return model, info


def _run_evaluate():
    from keras_rse import data, distribute, eval as rse_eval, zoo
    from keras_rse.zoo import cards

    if not FLAGS.model:
        raise ValueError("Invalid value for flag `--model`. Expected a zoo preset name (see "
                         "keras_rse.zoo.list()) or a .keras file. Received: model=None")
    if FLAGS.write_card and FLAGS.force_no_eot:
        raise ValueError("Invalid combination: --write_card with --force_no_eot. Cards hold "
                         "only evaluations whose attacks know the noise.")
    if FLAGS.write_card and not FLAGS.diagnostics:
        raise ValueError("Invalid combination: --write_card with --nodiagnostics. Cards carry "
                         "the sanity checks (noise on, gradients, attack strength).")
    if FLAGS.cpu_devices:
        distribute.split_cpu(FLAGS.cpu_devices)
    if FLAGS.attack_policy:
        warn_if_slow_policy(FLAGS.attack_policy, "--attack_policy")
    strategy = distribute.get_strategy(FLAGS.distribute)
    ensemble_sizes = [int(v) for v in FLAGS.ensemble_sizes]
    specs = [FLAGS.model] + ([FLAGS.baseline] if FLAGS.baseline else [])
    surrogate = _load_model(FLAGS.transfer_from, strategy)[0] if FLAGS.transfer_from else None
    output_dir = FLAGS.output_dir or os.path.join("reports", os.path.basename(FLAGS.model))
    resume_dir = (os.path.join(output_dir, ".partial")
                  if FLAGS.resume and FLAGS.distribute != "multiworker" else None)
    reports = []
    for index, spec in enumerate(specs):
        model, info = _load_model(spec, strategy, FLAGS.weights if index == 0 else "default")
        dataset = FLAGS.dataset or info.get("dataset") or "cifar10"
        x, y = data.load_split(dataset, "test", FLAGS.data_dir,
                               limit=max(FLAGS.n_clean, FLAGS.n_examples))
        print(f"== {info['model']}: {dataset} test, {FLAGS.n_clean} clean / "
              f"{FLAGS.n_examples} attacked images, {strategy.num_replicas_in_sync} "
              f"replica(s)", flush=True)
        report = rse_eval.evaluate(
            model, x, y, n_clean=FLAGS.n_clean, suites_to_run=FLAGS.suite, sweeps=FLAGS.sweeps,
            eot_samples=FLAGS.eot_samples, n_examples=FLAGS.n_examples,
            ensemble_sizes=ensemble_sizes, cw_steps=FLAGS.cw_steps,
            force_no_eot=FLAGS.force_no_eot, run_diagnostics=FLAGS.diagnostics,
            n_diagnostic=FLAGS.n_diagnostic, surrogate=surrogate, strategy=strategy,
            batch_size=FLAGS.batch_size or 128, seed=FLAGS.seed, progress=FLAGS.verbose > 0,
            resume_dir=resume_dir, attack_policy=FLAGS.attack_policy)
        report = dict(info, dataset=dataset, ensemble_size=int(model.ensemble_size),
                      test_data=data.describe_split(dataset, "test", FLAGS.data_dir),
                      command=" ".join(sys.argv), distribute=FLAGS.distribute,
                      replicas=strategy.num_replicas_in_sync, versions=_versions(), **report)
        reports.append(report)
    if not distribute.is_chief(strategy):
        return reports  # one writer per cluster
    written = rse_eval.write_report(reports, output_dir)
    if FLAGS.write_card:
        zoo_dir = FLAGS.zoo_dir or zoo.weights.source_zoo_dir()
        for report, spec in zip(reports, specs):
            preset = report["preset"]
            if preset is None or zoo.get_preset(preset)["weights"] is None or (
                    spec == FLAGS.model and FLAGS.weights != "default"):
                print(f"No card for {report['model']}: cards describe published preset "
                      f"weights only.", flush=True)
                continue
            card = cards.card_from_report(preset, report, os.path.basename(
                report["weights_file"]), report["weights_sha256"], report["command"])
            written.append(cards.write_card(card, zoo_dir))
    print("Wrote:\n  " + "\n  ".join(written), flush=True)
    return reports


def evaluate_main(argv):
    """Parses ``argv`` and evaluates; returns the list of per-model reports."""
    FLAGS.unparse_flags()
    FLAGS(list(argv))
    return _run_evaluate()


def evaluate_app(argv):
    """`absl.app.run` target of ``train/evaluate.py``."""
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    _run_evaluate()


def _run_export():
    from keras_rse import zoo

    if not FLAGS.model or not FLAGS.source:
        raise ValueError(f"Invalid flags. Expected --model=<zoo preset> and --source=<trained "
                         f".keras or .weights.h5>. Received: model={FLAGS.model!r}, "
                         f"source={FLAGS.source!r}")
    output_dir = os.path.join(FLAGS.zoo_dir, "weights") if FLAGS.zoo_dir else None
    path, digest = zoo.export_weights(FLAGS.model, FLAGS.source, output_dir)
    print(f"Wrote {path}\nsha256 {digest}\nAdd to PRESETS[{FLAGS.model!r}]: \"weights\": "
          f"{{\"file\": {os.path.basename(path)!r}, \"sha256\": {digest!r}, \"url\": None}}",
          flush=True)
    return path, digest


def export_app(argv):
    """`absl.app.run` target of ``train/export.py``."""
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    _run_export()
