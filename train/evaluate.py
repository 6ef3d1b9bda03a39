"""Evaluate a zoo preset or a .keras model: ``python3 train/evaluate.py --model cifar10_vgg16_rse``.

Writes report.json, report.md and PNG plots into --output_dir (default
reports/<model>); --write_card also writes zoo/cards/<preset>.json and
regenerates zoo/README.md. Run ``python3 train/evaluate.py --helpfull`` for
every flag.
"""

from absl import app

from keras_rse import cli

if __name__ == "__main__":
    app.run(cli.evaluate_app)
