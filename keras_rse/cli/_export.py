"""``train/export.py``: trained weights -> the zoo's float16 .npz and its sha256."""

import os

from keras_rse.cli._flags import FLAGS, parse, refuse_arguments


def _run_export():
    from keras_rse import zoo

    if not FLAGS.model or not FLAGS.source:
        raise ValueError(f"Invalid flags. Expected --model=<zoo preset> and --source=<trained "
                         f".keras or .weights.h5>. Received: model={FLAGS.model!r}, "
                         f"source={FLAGS.source!r}")
    if FLAGS.weights != "default":
        raise ValueError(f"Invalid flag for train/export.py: --weights={FLAGS.weights}. The "
                         f"trained weights to export are given by --source.")
    output_dir = os.path.join(FLAGS.zoo_dir, "weights") if FLAGS.zoo_dir else None
    path, digest = zoo.export_weights(FLAGS.model, FLAGS.source, output_dir)
    print(f"Wrote {path}\nsha256 {digest}\nAdd to PRESETS[{FLAGS.model!r}]: \"weights\": "
          f"{{\"file\": {os.path.basename(path)!r}, \"sha256\": {digest!r}, \"url\": None}}",
          flush=True)
    return path, digest


def export_main(argv: list[str]) -> tuple[str, str]:
    """Parses ``argv`` and exports; returns ``(path, sha256)`` of the written file."""
    parse(argv)
    return _run_export()


def export_app(argv: list[str]) -> None:
    """`absl.app.run` target of ``train/export.py``."""
    refuse_arguments(argv)
    _run_export()
