"""Train any defense or baseline: ``python3 train/fit.py --defense rse --workdir runs/rse``.

Run ``python3 train/fit.py --helpfull`` for every flag. Starting the same command
again with the same --workdir resumes from the last checkpoint (every epoch and
every --checkpoint_every steps).
"""

from absl import app

from keras_rse import cli

if __name__ == "__main__":
    app.run(cli.fit_app)
