"""Datasets: CIFAR-10 / STL-10 from a local npz directory or tensorflow-datasets.

Images come out as float32 in [0, 1], NHWC; labels as int32. A validation
split is always held out of the *training* set (seeded), so model selection
never looks at the test set.
"""

from keras_rse.data.loading import (DATA_DIR_ENV, SHAPES, describe_split, load_split,
                                    resolve_data_dir, train_validation_split)
from keras_rse.data.pipeline import augment, make_train_dataset

__all__ = ["DATA_DIR_ENV", "SHAPES", "augment", "describe_split", "load_split", "make_train_dataset",
           "resolve_data_dir", "train_validation_split"]
