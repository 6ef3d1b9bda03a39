"""Find the noise layers of a model and rescale or switch them off in place.

The papers' ablations need this: "noise at training only" (train noisy, test
with the noise off), "noise at test only" (train clean, switch noise on), and
deterministic checks of attacks. Each noise layer holds a scalar
``noise_scale`` variable that multiplies its noise; these helpers set it.
"""

import contextlib
import fnmatch
import hashlib
import weakref
from collections.abc import Iterator

import keras
import tensorflow as tf

from keras_rse._validation import check_non_negative_float, invalid_argument
from keras_rse.layers.bernoulli_gaussian_noise import BernoulliGaussianNoise
from keras_rse.layers.learned_noise import LearnedNoise
from keras_rse.layers.random_noise import RandomNoise

NOISE_LAYER_TYPES = (RandomNoise, BernoulliGaussianNoise, LearnedNoise)


def _walk_layers(layer):
    """Yields every layer inside ``layer`` (depth first, nested models included)."""
    for child in getattr(layer, "layers", None) or []:
        yield child
        yield from _walk_layers(child)
    # A wrapper model (such as SelfEnsemble) keeps its network as an attribute.
    network = getattr(layer, "network", None)
    if isinstance(network, keras.layers.Layer) and network is not layer:
        yield network
        yield from _walk_layers(network)


def noise_layers(model: keras.Model, pattern: str | None = None) -> list[keras.layers.Layer]:
    """Lists the noise layers of ``model``, in the model's layer order.

    Args:
        model: A Keras model (functional, nested, or a `SelfEnsemble`).
        pattern: Optional shell-style pattern matched against layer names
            (``"init_noise"``, ``"inner_noise*"``); None selects all.

    Returns:
        A list of layers (each one listed once).
    """
    found, seen = [], set()
    for layer in _walk_layers(model):
        if isinstance(layer, NOISE_LAYER_TYPES) and id(layer) not in seen:
            if pattern is None or fnmatch.fnmatchcase(layer.name, pattern):
                seen.add(id(layer))
                found.append(layer)
    return found


def set_noise_scale(model: keras.Model, scale: float,
                    pattern: str | None = None) -> list[keras.layers.Layer]:
    """Multiplies the noise of ``model``'s noise layers by ``scale`` (0 = off).

    The change takes effect in already-compiled functions too, since the scale
    is a variable. ``scale`` replaces (does not compound) the previous value.

    Args:
        model: A Keras model containing keras_rse noise layers.
        scale: A float >= 0; 1 restores the noise the model was built with.
        pattern: Optional layer-name pattern (see `noise_layers`).

    Returns:
        The list of layers that were changed.

    Raises:
        ValueError: if ``scale`` is invalid, or ``pattern`` matches no layer
            (a silent no-op would make an ablation meaningless).
    """
    scale = check_non_negative_float("scale", scale)
    layers = noise_layers(model, pattern)
    if not layers:
        raise invalid_argument(
            "pattern", "a pattern matching at least one noise layer of the model", pattern
        )
    for layer in layers:
        if not layer.built:
            raise ValueError(
                f"Noise layer {layer.name!r} is not built yet; call the model once first."
            )
        layer.noise_scale.assign(scale)
    return layers


def get_noise_scales(model: keras.Model) -> dict[str, float]:
    """Returns ``{layer name: current noise_scale}`` for every noise layer."""
    return {layer.name: float(layer.noise_scale.numpy()) for layer in noise_layers(model)}


@contextlib.contextmanager
def noise_scale(model: keras.Model, scale: float,
                pattern: str | None = None) -> Iterator[list[keras.layers.Layer]]:
    """Context manager: sets the noise scale inside the block, restores it after.

    Example:
        >>> with noise_scale(model, 0.0):
        ...     logits = model(x)   # deterministic
    """
    layers = noise_layers(model, pattern)
    previous = [float(layer.noise_scale.numpy()) for layer in layers if layer.built]
    set_noise_scale(model, scale, pattern)
    try:
        yield layers
    finally:
        for layer, value in zip(layers, previous):
            layer.noise_scale.assign(value)


def random_generator_states(model: keras.Model) -> list[keras.Variable]:
    """The state variables of every `keras.random.SeedGenerator` of ``model``.

    Noise layers draw from these (so does any other random layer). Keras leaves
    them out of a model's weights and checkpoints, so after loading they hold
    whatever the process's seeding gave them.
    """
    return [v for v in model.variables if v.name == "seed_generator_state"]


# model -> (strategy, generator states, tf.function): the traced per-replica offset, rebuilt
# when the strategy or the model's list of generators changes.
_REPLICA_OFFSETS = weakref.WeakKeyDictionary()


def _replica_offset_function(states, strategy):
    """A tf.function moving each replica's copy of ``states`` to a stream of its own."""

    def offset():
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group,
                          tf.int64)
        for state in states:
            value = tf.cast(state.value, tf.int64)
            # Knuth's multiplicative hash spreads the replicas over the 31-bit streams.
            stream = (value[0] + replica * 2654435761) % 2147483648
            state.assign(tf.cast(tf.stack([stream, value[1]]), state.dtype))

    return tf.function(lambda: strategy.run(offset))


def give_replicas_their_own_streams(model: keras.Model,
                                    strategy: tf.distribute.Strategy | None) -> int:
    """Moves each replica's copy of ``model``'s generator states to a stream of its own.

    Mirrored generator states start equal on every replica and advance alike,
    so without this the replicas of a `tf.distribute` strategy draw the same
    noise for their examples (example i of every replica's sub-batch). Replica
    r's stream becomes ``stream + r * 2654435761 (mod 2**31)``; replica 0 keeps
    its stream, and the counters are untouched, so applying this again after a
    checkpoint restore (which copies the saved primary state to every replica)
    recreates exactly the streams the replicas had. A single-replica strategy
    (or None) is left unchanged.

    Apply it once after the replicas' states were made equal (a restore or
    `reseed_random_generators`, which calls it): the offset adds to each
    replica's current stream, so a second call would move them further.

    Args:
        model: A Keras model built under ``strategy``'s scope.
        strategy: A `tf.distribute.Strategy`, or None.

    Returns:
        The number of replicas in sync (all workers' together); 0 when nothing
        was changed.
    """
    states = random_generator_states(model)
    replicas = getattr(strategy, "num_replicas_in_sync", 1)
    if not states or replicas <= 1:
        return 0
    ids = [id(state) for state in states]
    cached = _REPLICA_OFFSETS.get(model)
    if cached is None or cached[0] is not strategy or cached[1] != ids:
        cached = _REPLICA_OFFSETS[model] = (strategy, ids,
                                            _replica_offset_function(states, strategy))
    cached[2]()
    return replicas


def reseed_random_generators(model: keras.Model, key: str,
                             strategy: tf.distribute.Strategy | None = None) -> int:
    """Sets every random generator state of ``model`` from ``key``; returns how many.

    Two calls with the same key make the model draw the same noise afterwards,
    whatever it drew before: an evaluation reseeds before each of its parts, so
    a part computed again (or resumed) gives the same numbers. Each generator
    gets its own stream (a generator's state is ``[stream, counter]``; equal
    streams would correlate the noise of different layers), and under a
    strategy with several replicas each replica too (mirrored states start
    equal, and the replicas would draw the same noise for their examples).

    Args:
        model: A Keras model (built under ``strategy``'s scope, if any).
        key: Any string (for example the seed and the name of the part).
        strategy: Optional `tf.distribute.Strategy` whose replicas run the model.

    Returns:
        The number of generator states set.
    """
    states = random_generator_states(model)
    for index, state in enumerate(states):
        digest = hashlib.sha256(f"{key}/{index}".encode()).digest()
        stream = int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
        state.assign(keras.ops.convert_to_tensor([stream, 0], dtype=state.dtype))
    give_replicas_their_own_streams(model, strategy)
    return len(states)
