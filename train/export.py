"""Export trained weights into the zoo format (float16 .npz) and print their sha256.

``python3 train/export.py --model cifar10_vgg16_rse --source runs/cifar10_vgg16_rse/model.keras
--zoo_dir runs/export`` (``--zoo_dir``: a published preset's file in ``zoo/`` is never overwritten)
"""

from absl import app

from keras_rse import cli

if __name__ == "__main__":
    app.run(cli.export_app)
