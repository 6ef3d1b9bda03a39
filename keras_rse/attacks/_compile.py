"""Cache of compiled attack loops, so sweeping eps or batches does not retrace."""

import weakref

import keras
import tensorflow as tf

_CACHE = weakref.WeakKeyDictionary()


def cached(model, key, build):
    """Returns the compiled function for ``(model, key)``, building it once.

    Args:
        model: The attacked model or callable (held weakly).
        key: A hashable description of every static setting of the loop.
        build: Zero-argument function creating the `tf.function`.
    """
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]


def num_classes_of(model, model_fn, x):
    """Number of classes of ``model`` (one forward pass if it cannot be read).

    ``x`` (array-like images) is only touched in that fallback.
    """
    if getattr(model, "num_classes", None):
        return int(model.num_classes)
    if isinstance(model, keras.Model) and getattr(model, "outputs", None):
        return int(model.outputs[0].shape[-1])
    return int(model_fn(tf.convert_to_tensor(x[:1], tf.float32)).shape[-1])
