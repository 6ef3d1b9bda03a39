"""Command-line entry points; the scripts in train/ only call these.

``train/fit.py`` -> `fit_app`, ``train/evaluate.py`` -> `evaluate_app`,
``train/export.py`` -> `export_app` (`fit_main`, `evaluate_main` and
`export_main` take an argv, for tests and notebooks). The flags are shared
(absl keeps one global set, defined in `keras_rse.cli._flags`): each flag's
help says which script reads it. Importing this package defines the flags, so
``import keras_rse`` does not import it.
"""

from keras_rse.cli._evaluate import evaluate_app, evaluate_main
from keras_rse.cli._export import export_app, export_main
from keras_rse.cli._fit import fit_app, fit_main

__all__ = ["evaluate_app", "evaluate_main", "export_app", "export_main", "fit_app", "fit_main"]
