"""Pretrained randomized models: ``keras_rse.zoo.load("cifar10_vgg16_rse")``.

Presets are data (`keras_rse.zoo.presets.PRESETS`); weights are verified by
sha256 before anything is loaded. Weights are looked up, in order:

1. an explicit path (``load(name, weights="/path/file.npz")``);
2. the cache directory ``$KERAS_RSE_HOME/weights`` (default
   ``~/.keras/keras_rse/weights``);
3. the ``zoo/weights`` folder of a source checkout;
4. the preset's download URL, through ``keras.utils.get_file(...,
   file_hash=sha256)`` into the cache.

Example:
    >>> model = keras_rse.zoo.load("cifar10_vgg16_rse")
    >>> probs = model.predict(x)          # self-ensemble over 10 noise draws
"""

import difflib
import fnmatch
import os
import warnings
from typing import Any, List

import keras

from keras_rse._io import sha256_of
from keras_rse._validation import invalid_argument
from keras_rse.models import SelfEnsemble, with_dtype_policy
from keras_rse.zoo import weights as _weights
from keras_rse.zoo.presets import PRESETS

__all__ = ["PRESETS", "build", "export_weights", "get_preset", "list", "load", "load_weights",
           "weights_path"]

_list = list  # `list` below is the zoo's listing function, as in timm / KerasHub


def list(pattern: str = "*",  # noqa: A001 (the public name users expect)
         with_weights: bool = False) -> List[str]:
    """Names of the presets matching ``pattern`` (shell style), sorted.

    Args:
        pattern: For example ``"cifar10_*_rse"``.
        with_weights: Only presets whose weights are published.
    """
    return sorted(name for name, preset in PRESETS.items()
                  if fnmatch.fnmatchcase(name, pattern)
                  and (preset["weights"] is not None or not with_weights))


def get_preset(name: str) -> dict[str, Any]:
    """The preset dict of ``name``; an unknown name lists the closest ones."""
    if name not in PRESETS:
        raise invalid_argument("name", f"a zoo preset (see keras_rse.zoo.list())"
                               f"{_close_presets(name)}", name)
    return PRESETS[name]


def _close_presets(name):
    """``"; did you mean 'a', 'b'?"`` for the preset names close to ``name`` (or "")."""
    close = difflib.get_close_matches(str(name), _list(PRESETS), n=3, cutoff=0.4)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


def build(name: str, **overrides: Any) -> SelfEnsemble:
    """Builds the preset's architecture with fresh (untrained) weights.

    Args:
        name: A preset name.
        **overrides: Builder arguments that replace the preset's (``seed``).

    Returns:
        A `keras_rse.models.SelfEnsemble`.
    """
    from keras_rse.defenses import network_kwargs
    from keras_rse.models import create_model

    preset = get_preset(name)
    kwargs = network_kwargs(preset["defense"], ensemble_size=preset["ensemble_size"],
                            **preset["builder_kwargs"])
    kwargs.update(overrides)
    return create_model(preset["model"], **kwargs)


def _not_published(name, preset):
    return FileNotFoundError(
        f"The zoo preset {name!r} has no published weights yet. Train them with:\n"
        f"    {preset['command']}\n"
        f"then load the result with keras_rse.zoo.load({name!r}, "
        f"weights='<workdir>/model.weights.h5'), or build the untrained architecture with "
        f"weights=None.")


def weights_path(name: str, cache_dir: str | None = None) -> str:
    """Finds (or downloads) the preset's weights file and verifies its sha256.

    Args:
        name: A preset name.
        cache_dir: Overrides ``$KERAS_RSE_HOME``.

    Returns:
        The path of a file whose sha256 matches the preset.

    Raises:
        FileNotFoundError: the preset has no published weights, or no copy was
            found and it has no URL.
        ValueError: a copy was found whose hash does not match.
    """
    preset = get_preset(name)
    spec = preset["weights"]
    if spec is None:
        raise _not_published(name, preset)
    home = cache_dir or _weights.home_dir()
    candidates = [os.path.join(home, "weights", spec["file"])]
    source = _weights.source_zoo_dir()
    if source:
        candidates.append(os.path.join(source, "weights", spec["file"]))
    for path in candidates:
        if os.path.isfile(path):
            _weights.verify_sha256(path, spec["sha256"], hint=(
                f"Delete this copy of the cache ({home}) so that the next load finds a "
                f"good one." if path == candidates[0] else
                "Restore it with: git checkout -- zoo/weights."))
            return path
    if not spec.get("url"):
        raise FileNotFoundError(
            f"No copy of {spec['file']} (preset {name!r}) in {candidates} and the preset has "
            f"no download URL. Put the file in {os.path.join(home, 'weights')} or retrain it "
            f"with:\n    {preset['command']}")
    path = keras.utils.get_file(spec["file"], origin=spec["url"], file_hash=spec["sha256"],
                                cache_dir=home, cache_subdir="weights")
    _weights.verify_sha256(path, spec["sha256"], hint="Delete it and load again to "
                           "download it anew.")  # get_file's check, made explicit
    return path


def load(name: str | os.PathLike, weights: str | os.PathLike | None = "default",
         ensemble_size: int | None = None, cache_dir: str | None = None) -> SelfEnsemble:
    """Loads a pretrained randomized model.

    Args:
        name: A preset name (see `list`), or the path of a ``.keras`` file
            (loaded with ``safe_mode=True``).
        weights: ``"default"``: the preset's verified weights; a path to a
            ``.npz`` (zoo format) or ``.weights.h5`` file (for a preset with
            published weights it must match the preset's sha256); None: the
            untrained architecture. A ``.keras`` file carries its own weights:
            only ``"default"`` is accepted with one.
        ensemble_size: Draws averaged by ``predict``; default: the preset's.
        cache_dir: Overrides ``$KERAS_RSE_HOME`` for the weights cache.

    Returns:
        A `keras_rse.models.SelfEnsemble`: ``model(x)`` is one noisy member,
        ``model.predict(x)`` the self-ensemble.
    """
    if str(name).endswith(".keras"):
        if weights != "default":
            raise invalid_argument("weights", "'default' with a .keras file, which carries its "
                                   "own weights", weights)
        model = _load_keras_file(name)
    else:
        preset = get_preset(name)
        model = build(name)
        if weights == "default":
            _weights.load_npz(model.network, weights_path(name, cache_dir))
        elif weights is not None:
            _load_explicit(model, name, preset, str(weights))
    if ensemble_size is not None:
        model.ensemble_size = ensemble_size
    return model


def load_weights(network: keras.Model, source: str | os.PathLike,
                 cache_dir: str | None = None) -> tuple[str, str]:
    """Assigns a preset's or a file's weights to a built network, in place.

    ``train/fit.py --init_weights`` starts a run from them (continued training,
    fine-tuning) instead of a random initialisation.

    Args:
        network: A built Keras model: the ``network`` of a `SelfEnsemble` or of
            a defense model, with the architecture the weights were saved from.
        source: A preset name with published weights (found and verified as by
            `load`), a ``.npz`` file in the zoo format, or a ``.weights.h5``
            file written by ``train/fit.py``.
        cache_dir: Overrides ``$KERAS_RSE_HOME`` for a preset's weights.

    Returns:
        ``(path, sha256)`` of the file that was loaded.

    Raises:
        ValueError: neither a preset nor an existing file (close preset names
            listed), a preset hash mismatch, a file of another kind (a
            ``.keras`` file: use the ``model.weights.h5`` beside it), or
            weights of another architecture.
        FileNotFoundError: a preset without published weights, or without a
            local copy and a download URL.
    """
    source = str(source)
    if source in PRESETS:
        path = weights_path(source, cache_dir)
    elif os.path.isfile(source):
        path = source
    else:
        raise invalid_argument("source", f"an existing .npz / .weights.h5 file or a zoo "
                               f"preset{_close_presets(source)}", source)
    if path.endswith(".npz"):
        _weights.load_npz(network, path)
    elif path.endswith(".weights.h5"):
        # train/fit.py saves the weights of a SelfEnsemble wrapping the network.
        SelfEnsemble(network, ensemble_size=1).load_weights(path)
    else:
        raise invalid_argument("source", "a .npz or a .weights.h5 file (for a .keras file of "
                               "train/fit.py, the model.weights.h5 beside it)", source)
    return path, sha256_of(path)


def _load_keras_file(path, argument="name"):
    if not os.path.isfile(path):
        raise invalid_argument(argument, "a preset name or an existing .keras file", path)
    model = keras.saving.load_model(path, safe_mode=True)
    model = model if isinstance(model, SelfEnsemble) else SelfEnsemble(model, ensemble_size=1)
    policies = _compute_policies(model.network)
    if policies != {"float32"}:
        # A run trained with --mixed_precision saves every layer's mixed policy; its
        # variables are float32, so computing in float32 loses nothing and matches the
        # presets (bfloat16 is also ~10x slower on CPUs without AMX).
        warnings.warn(f"{path}: saved with the {sorted(policies)} compute policy; loaded to "
                      f"compute in float32 like the presets (keras_rse.models."
                      f"with_dtype_policy converts back).", stacklevel=3)
        model = with_dtype_policy(model, "float32")
    return model


def _compute_policies(network):
    """The names of the dtype policies the layers of ``network`` (nested too) compute under."""
    policies = set()
    for layer in network.layers:
        if isinstance(layer, keras.Model):
            policies |= _compute_policies(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            policies.add(layer.dtype_policy.name)
    return policies


def _load_explicit(model, name, preset, path, argument="weights"):
    if not os.path.isfile(path):
        raise invalid_argument(argument, "'default', None or an existing weights file", path)
    if preset["weights"] is not None:
        _weights.verify_sha256(path, preset["weights"]["sha256"], hint=(
            f"For weights of your own with this architecture (a retrained run), use "
            f"zoo.load({name!r}, weights=None) then zoo.load_weights(model.network, path), "
            f"or train/evaluate.py --weights=<file>."))
    if path.endswith(".npz"):
        _weights.load_npz(model.network, path)
    elif path.endswith(".weights.h5"):
        model.load_weights(path)
    else:
        raise invalid_argument(argument, "a .npz or .weights.h5 file", path)


def export_weights(name: str, source: str | os.PathLike, output_dir: str | None = None,
                   dtype: str = "float16") -> tuple[str, str]:
    """Writes a trained model's weights in the zoo format for preset ``name``.

    Args:
        name: The preset the weights belong to (its architecture must match).
        source: A ``.keras`` file (loaded with ``safe_mode=True``) or a
            ``.weights.h5`` file written by ``train/fit.py``.
        output_dir: Destination folder; default the source checkout's
            ``zoo/weights``.
        dtype: Storage dtype, ``"float16"`` (default) or ``"float32"``.

    Returns:
        ``(path, sha256)`` of the written ``<name>.<dtype>.npz`` file; put
        both into the preset's ``weights`` entry.
    """
    model = build(name)
    if str(source).endswith(".keras"):
        trained = _load_keras_file(source, argument="source").network
        expected = {v.path: tuple(v.shape) for v in model.network.weights}
        found = {v.path: tuple(v.shape) for v in trained.weights}
        if expected != found:
            raise ValueError(f"{source} does not have the architecture of preset {name!r}: "
                             f"{len(found)} vs {len(expected)} variables; first differences: "
                             f"{sorted(set(found.items()) ^ set(expected.items()))[:3]}")
        network = trained
    else:
        _load_explicit(model, name, dict(get_preset(name), weights=None), str(source),
                       argument="source")
        network = model.network
    output_dir = output_dir or os.path.join(_weights.source_zoo_dir() or ".", "weights")
    path = os.path.join(output_dir, f"{name}.{dtype}.npz")
    published = (get_preset(name)["weights"] or {}).get("sha256")
    if published and os.path.isfile(path) and sha256_of(path) == published:
        # Overwriting would make zoo.load(name) refuse the preset (its hash no longer matches).
        raise invalid_argument(
            "output_dir", f"a folder without the published weights of {name!r} (export "
            f"elsewhere, e.g. train/export.py --zoo_dir=<dir>, then replace the file and the "
            f"preset's sha256 together)", output_dir)
    os.makedirs(output_dir, exist_ok=True)
    return path, _weights.save_npz(network, path, dtype)
