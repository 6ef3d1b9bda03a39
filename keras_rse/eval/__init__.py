"""Evaluation of (randomized) defenses: clean and adversarial accuracy, sweeps, checks.

`evaluate` measures; `write_report` writes JSON, Markdown and PNG; suites and
their attack settings are data in `keras_rse.eval.suites`; the sanity checks
are in `keras_rse.eval.diagnostics`. ``train/evaluate.py`` runs it all.
"""

from keras_rse.eval import diagnostics, suites
from keras_rse.eval._measure import wilson_interval
from keras_rse.eval.evaluate import evaluate
from keras_rse.eval.report import to_markdown, write_report

__all__ = ["diagnostics", "evaluate", "suites", "to_markdown", "wilson_interval",
           "write_report"]
