"""``train/evaluate.py``: evaluates a preset or a .keras model, writes reports and cards."""

import os
import sys

from keras_rse._hardware import warn_if_slow_policy
from keras_rse.cli._flags import FLAGS, parse, refuse_arguments, versions


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


def _check_flags():
    """Refuses flag combinations an evaluation cannot honour, naming the flags.

    Returns:
        The ensemble sizes of ``--ensemble_sizes`` as integers.
    """
    if not FLAGS.model:
        raise ValueError("Invalid value for flag `--model`. Expected a zoo preset name (see "
                         "keras_rse.zoo.list()) or a .keras file. Received: model=None")
    if FLAGS.write_card and FLAGS.force_no_eot:
        raise ValueError("Invalid combination: --write_card with --force_no_eot. Cards hold "
                         "only evaluations whose attacks know the noise.")
    if FLAGS.write_card and not FLAGS.diagnostics:
        raise ValueError("Invalid combination: --write_card with --nodiagnostics. Cards carry "
                         "the sanity checks (noise on, gradients, attack strength).")
    keras_file = FLAGS.model.endswith(".keras")
    if FLAGS.write_card and (keras_file or FLAGS.weights != "default"):
        raise ValueError(f"Invalid combination: --write_card with --model={FLAGS.model} "
                         f"--weights={FLAGS.weights}. Cards describe the published weights of "
                         f"a zoo preset (--model=<preset>, --weights=default).")
    if keras_file and FLAGS.weights != "default":
        raise ValueError(f"Invalid combination: --weights={FLAGS.weights} with a .keras "
                         f"--model ({FLAGS.model}), which carries its own weights.")
    for flag in ("model", "baseline", "transfer_from", "weights"):
        path = getattr(FLAGS, flag)
        if path and path.endswith((".keras", ".npz", ".h5")) and not os.path.isfile(path):
            raise ValueError(f"Invalid value for flag `--{flag}`. Expected an existing file. "
                             f"Received: {flag}={path!r}")
    _check_names(FLAGS.suite, FLAGS.sweeps)
    try:  # before any model or data is loaded
        return [int(size) for size in FLAGS.ensemble_sizes]
    except ValueError:
        raise ValueError(f"Invalid value for flag `--ensemble_sizes`. Expected comma-separated "
                         f"integers such as 1,10,50. Received: "
                         f"ensemble_sizes={','.join(FLAGS.ensemble_sizes)!r}") from None


def _check_names(suites_to_run, sweeps):
    """Refuses unknown --suite / --sweeps names before hours of attacks run, not after."""
    from keras_rse.eval import suites

    for suite in suites_to_run:
        if suite not in suites.DEFAULT_EOT:
            raise ValueError(f"Invalid value for flag `--suite`. Expected names from "
                             f"{sorted(suites.DEFAULT_EOT)}. Received: suite={suite!r}")
    for sweep in sweeps:
        if sweep not in suites.SWEEPS:
            raise ValueError(f"Invalid value for flag `--sweeps`. Expected names from "
                             f"{list(suites.SWEEPS)}. Received: sweeps={sweep!r}")


def _default_output_dir(model):
    """reports/<preset>, or reports/<run folder> for a train/fit.py ``<workdir>/model.keras``."""
    name = os.path.basename(os.path.abspath(model))
    if name == "model.keras":
        name = os.path.basename(os.path.dirname(os.path.abspath(model)))
    return os.path.join("reports", name.removesuffix(".keras"))


def _evaluate_one(spec, weights, strategy, surrogate, resume_dir, ensemble_sizes):
    """Loads and evaluates one model (``--model`` or ``--baseline``); returns its report."""
    from keras_rse import data, eval as rse_eval

    model, info = _load_model(spec, strategy, weights)
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
    return dict(info, dataset=dataset, ensemble_size=int(model.ensemble_size),
                test_data=data.describe_split(dataset, "test", FLAGS.data_dir),
                command=" ".join(sys.argv), distribute=FLAGS.distribute,
                replicas=strategy.num_replicas_in_sync, versions=versions(), **report)


def _write_cards(reports, specs):
    """``--write_card``: a card per report of published preset weights; returns the paths."""
    from keras_rse import zoo
    from keras_rse.zoo import cards

    zoo_dir = FLAGS.zoo_dir or zoo.weights.source_zoo_dir()
    written = []
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
    return written


def _is_the_surrogate(spec, weights):
    """Whether ``spec`` with ``weights`` is the ``--transfer_from`` model itself.

    Attacking a model through itself is its white-box attack, not a transfer check:
    that model (typically ``--baseline`` = ``--transfer_from`` = the undefended
    network) gets the default surrogate instead.
    """
    if not FLAGS.transfer_from or weights != "default":
        return False
    if os.path.isfile(spec) and os.path.isfile(FLAGS.transfer_from):
        return os.path.samefile(spec, FLAGS.transfer_from)
    return spec == FLAGS.transfer_from


def _run_evaluate():
    from keras_rse import distribute, eval as rse_eval

    ensemble_sizes = _check_flags()
    if FLAGS.cpu_devices:
        distribute.split_cpu(FLAGS.cpu_devices)
    if FLAGS.attack_policy:
        warn_if_slow_policy(FLAGS.attack_policy, "--attack_policy")
    strategy = distribute.get_strategy(FLAGS.distribute)
    specs = [FLAGS.model] + ([FLAGS.baseline] if FLAGS.baseline else [])
    surrogate = _load_model(FLAGS.transfer_from, strategy)[0] if FLAGS.transfer_from else None
    output_dir = FLAGS.output_dir or _default_output_dir(FLAGS.model)
    resume_dir = (os.path.join(output_dir, ".partial")
                  if FLAGS.resume and FLAGS.distribute != "multiworker" else None)
    weights = [FLAGS.weights] + ["default"] * (len(specs) - 1)
    reports = [_evaluate_one(spec, spec_weights, strategy,
                             None if _is_the_surrogate(spec, spec_weights) else surrogate,
                             resume_dir, ensemble_sizes)
               for spec, spec_weights in zip(specs, weights)]
    if not distribute.is_chief(strategy):
        return reports  # one writer per cluster
    written = rse_eval.write_report(reports, output_dir)
    if FLAGS.write_card:
        written += _write_cards(reports, specs)
    print("Wrote:\n  " + "\n  ".join(written), flush=True)
    return reports


def evaluate_main(argv: list[str]) -> list[dict]:
    """Parses ``argv`` and evaluates; returns the list of per-model reports."""
    parse(argv)
    return _run_evaluate()


def evaluate_app(argv: list[str]) -> None:
    """`absl.app.run` target of ``train/evaluate.py``."""
    refuse_arguments(argv)
    _run_evaluate()
