"""Run an attack over a dataset under any `tf.distribute.Strategy`, results gathered.

The same compiled attack step runs on every replica: one CPU or GPU (the
default strategy), all local devices (`MirroredStrategy`) or several hosts
(`MultiWorkerMirroredStrategy`, configured by ``TF_CONFIG``). Every example
carries its index through the pipeline, so the gathered results can be
checked to cover each example exactly once, and are returned in input order.
"""

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rse._validation import check_choice, check_positive_int, invalid_argument
from keras_rse.attacks import _eot
from keras_rse.attacks._compile import num_classes_of
from keras_rse.attacks._utils import ModelLike, check_images_and_labels, distortion

__all__ = ["RESULT_KEYS", "STRATEGIES", "get_strategy", "is_chief", "predicted_probabilities",
           "run_attack", "split_cpu", "task_label"]

STRATEGIES = {"none", "mirrored", "multiworker"}


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into ``num_devices`` logical devices (before TF starts).

    Lets `MirroredStrategy` be exercised on a machine without accelerators.
    Must run before any TensorFlow operation executes.
    """
    num_devices = check_positive_int("num_devices", num_devices)
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])


def get_strategy(name: str = "none") -> tf.distribute.Strategy:
    """Returns the strategy for ``name``: ``"none"``, ``"mirrored"`` or ``"multiworker"``.

    ``"mirrored"`` uses every local GPU, or every logical CPU when there is no
    GPU; ``"multiworker"`` reads the cluster from the ``TF_CONFIG`` variable.
    """
    check_choice("strategy", name, STRATEGIES)
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise invalid_argument("strategy", "'multiworker' with TF_CONFIG set", name)
        json.loads(os.environ["TF_CONFIG"])  # fail early on a malformed cluster spec
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _predict_classes(model, model_fn, x):
    """Classes the defended model predicts: its self-ensemble if it has one."""
    if hasattr(model, "ensemble_probabilities"):
        return tf.argmax(model.ensemble_probabilities(x), axis=-1, output_type=tf.int32)
    return tf.argmax(model_fn(x), axis=-1, output_type=tf.int32)


def predicted_probabilities(model: ModelLike, x: tf.Tensor) -> tf.Tensor:
    """The probabilities behind `run_attack`'s verdict: the self-ensemble's if ``model``
    has one (their argmax is the class `run_attack` compares with the label).

    Args:
        model: The defended model (a `SelfEnsemble`, a Keras model or a callable).
        x: A batch of images.

    Returns:
        Class probabilities, shape ``(batch, classes)``; fresh noise draws at every call.
    """
    if hasattr(model, "ensemble_probabilities"):
        return model.ensemble_probabilities(x)
    return tf.nn.softmax(_eot.model_callable(model)(x))


RESULT_KEYS = ("index", "label", "clean_prediction", "adversarial_prediction", "success", "l2",
               "linf")


def run_attack(model: ModelLike, attack_fn: Callable, x: np.ndarray, y: np.ndarray, *,
               strategy: tf.distribute.Strategy | None = None, batch_size: int = 128,
               progress: bool = True, finished: Sequence[dict] = (),
               on_batch: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """Attacks every example of ``(x, y)`` and gathers per-example results.

    Args:
        model: The attacked model (used for the clean and adversarial
            predictions: a `SelfEnsemble` predicts with its ensemble).
        attack_fn: ``(x, y) -> (x_adv, success)`` on one replica's batch, for
            example ``lambda x, y: make_pgd(model, ...)(x, y, eps, step, seed)``.
        x: Images (N, H, W, C) in [0, 1].
        y: Integer labels (N,).
        strategy: A `tf.distribute.Strategy`; default: the current one.
        batch_size: Global batch size (split across replicas).
        progress: Show a progress bar (on the chief only).
        finished: Results of the first batches from an earlier, interrupted run
            (the dicts ``on_batch`` received, in order): their examples are not
            attacked again, so a long attack resumes at its first unfinished
            batch.
        on_batch: Optional ``fn(batch_number, results)`` called after each
            batch with that batch's dict of numpy arrays (``RESULT_KEYS``), for
            example to keep it on disk.

    Returns:
        A dict of numpy arrays in input order: ``index``, ``label``,
        ``clean_prediction``, ``adversarial_prediction``, ``success``, ``l2``,
        ``linf``; plus ``clean_accuracy`` and ``robust_accuracy`` (floats).
    """
    strategy = strategy or tf.distribute.get_strategy()
    batch_size = check_positive_int("batch_size", batch_size)
    model_fn = _eot.model_callable(model)
    x, y = check_images_and_labels(x, y, num_classes_of(model, model_fn, x))
    count = int(x.shape[0])
    parts = _finished_parts(finished, batch_size, count)
    start = sum(len(part["index"]) for part in parts)
    dataset = tf.data.Dataset.from_tensor_slices(
        (x[start:], y[start:], tf.range(start, count))).batch(batch_size)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dist_dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))

    def replica_step(x_batch, y_batch, index):
        x_adv, success = attack_fn(x_batch, y_batch)
        l2, linf = distortion(x_adv, x_batch)
        # Collective gathers take no bool tensors: success travels as int32.
        return (index, y_batch, _predict_classes(model, model_fn, x_batch),
                _predict_classes(model, model_fn, x_adv), tf.cast(success, tf.int32), l2, linf)

    @tf.function
    def distributed_step(batch):
        outputs = strategy.run(replica_step, args=batch)
        return [strategy.gather(t, axis=0) for t in outputs]

    chief = is_chief(strategy)
    bar = keras.utils.Progbar(count, unit_name="example") if progress and chief else None
    if bar is not None and start:
        bar.update(start)
    for batch in dist_dataset if start < count else ():
        parts.append(dict(zip(RESULT_KEYS, (t.numpy() for t in distributed_step(batch)))))
        if on_batch is not None:
            on_batch(len(parts) - 1, parts[-1])
        if bar is not None:
            bar.add(len(parts[-1]["index"]))
    return _gathered_results(parts, count)


def _finished_parts(finished, batch_size, count):
    """``finished`` as numpy dicts, checked to be whole batches from the start of the data."""
    parts = [{k: np.asarray(part[k]) for k in RESULT_KEYS} for part in finished]
    start = sum(len(part["index"]) for part in parts)
    if any(len(part["index"]) != batch_size for part in parts[:-1]) or (
            start % batch_size and start != count) or start > count:
        raise ValueError(f"Invalid value for argument `finished`. Expected the results of "
                         f"whole batches of {batch_size} from the start of the data. Received: "
                         f"{len(parts)} batches of sizes {[len(p['index']) for p in parts]}")
    return parts


def _gathered_results(parts, count):
    """The batches' results in input order, with the clean and robust accuracies.

    Raises if the batches do not cover each example exactly once; the keys are
    those of `run_attack`'s Returns.
    """
    results = {k: np.concatenate([p[k] for p in parts]) for k in RESULT_KEYS}
    order = np.argsort(results["index"], kind="stable")
    results = {k: v[order] for k, v in results.items()}
    results["success"] = results["success"].astype(bool)
    if not np.array_equal(results["index"], np.arange(count)):
        raise RuntimeError("The distributed run did not cover every example exactly once.")
    clean_correct = results["clean_prediction"] == results["label"]
    results["clean_accuracy"] = float(clean_correct.mean())
    # Robust accuracy: correct on the clean image AND on the adversarial one.
    results["robust_accuracy"] = float(
        (clean_correct & (results["adversarial_prediction"] == results["label"])).mean())
    return results


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the process that writes shared outputs (logs, checkpoints, artifacts).

    Single-process strategies always are; under `MultiWorkerMirroredStrategy`
    it is the ``chief`` task, or worker 0 when the cluster has no chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    return task_type in (None, "chief") or (
        task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def task_label(strategy: tf.distribute.Strategy) -> str:
    """``"<type><id>"`` of this process in a multi-worker cluster (``"chief"`` otherwise)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    return "chief" if task_type in (None, "chief") else f"{task_type}{resolver.task_id}"
