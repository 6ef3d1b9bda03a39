"""Zoo: presets build, weights are hash-verified, cards and presets stay in step."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from keras_rse import zoo
from keras_rse.defenses import DEFENSES
from keras_rse.layers import noise_scale
from keras_rse.zoo import cards, presets
from keras_rse.zoo import weights as zoo_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO_DIR = os.path.join(ROOT, "zoo")
TINY = "cifar10_vgg16tiny_rse"


@pytest.fixture
def tiny_preset(monkeypatch, tmp_path):
    """A tiny preset with exported weights in a temporary KERAS_RSE_HOME."""
    preset = dict(presets.PRESETS["cifar10_vgg16_rse"], model="vgg16_tiny", weights=None)
    monkeypatch.setitem(presets.PRESETS, TINY, preset)
    trained = zoo.build(TINY, seed=3)  # stands in for a trained model
    home = tmp_path / "home"
    path, digest = zoo.export_weights(TINY, _save(trained, tmp_path), str(home / "weights"))
    monkeypatch.setitem(preset, "weights", {"file": os.path.basename(path), "sha256": digest,
                                            "url": None})
    monkeypatch.setenv(zoo_weights.HOME_ENV, str(home))
    return trained, path


def _save(model, folder):
    path = str(folder / "trained.keras")
    model.save(path)
    return path


def test_export_refuses_to_overwrite_published_weights(tiny_preset, tmp_path):
    """Exporting a retrained model over the preset's published file would break zoo.load."""
    trained, published = tiny_preset
    source = str(tmp_path / "retrained.keras")
    zoo.build(TINY, seed=4).save(source)
    with pytest.raises(ValueError, match=rf"`output_dir`.*published weights of '{TINY}'"):
        zoo.export_weights(TINY, source, os.path.dirname(published))
    assert zoo_weights.sha256_of(published) == presets.PRESETS[TINY]["weights"]["sha256"]
    path, _ = zoo.export_weights(TINY, source, str(tmp_path / "elsewhere"))
    assert os.path.isfile(path)


def test_export_command_writes_loadable_weights_and_names_missing_flags(tiny_preset, tmp_path,
                                                                       capsys):
    """`train/export.py --model --source --zoo_dir`: the file it prints loads back to the
    trained weights; without --source it says which flags it expects."""
    from keras_rse import cli

    trained, _ = tiny_preset
    source = str(tmp_path / "retrained.keras")
    retrained = zoo.build(TINY, seed=5)
    retrained.save(source)
    path, digest = cli.export_main(["export", f"--model={TINY}", f"--source={source}",
                                    f"--zoo_dir={tmp_path / 'zoo'}"])
    assert path == str(tmp_path / "zoo" / "weights" / f"{TINY}.float16.npz")
    assert digest == zoo_weights.sha256_of(path) and digest in capsys.readouterr().out
    loaded = zoo.load(TINY, weights=None)  # zoo.load(weights=path) wants the published hash
    assert zoo.load_weights(loaded.network, path) == (path, digest)
    x = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(_deterministic_logits(loaded, x),
                               _deterministic_logits(retrained, x), rtol=0, atol=2e-2)
    assert not np.allclose(_deterministic_logits(loaded, x), _deterministic_logits(trained, x))
    with pytest.raises(ValueError, match=r"--source=.*Received: model='cifar10_vgg16tiny_rse', "
                                         r"source=None"):
        cli.export_main(["export", f"--model={TINY}"])
    with pytest.raises(ValueError, match=r"argument `source`.*Received: source='missing.keras'"):
        cli.export_main(["export", f"--model={TINY}", "--source=missing.keras"])
    with pytest.raises(ValueError, match=r"--weights=other.npz.*given by --source"):
        cli.export_main(["export", f"--model={TINY}", f"--source={source}",
                         "--weights=other.npz"])


def _deterministic_logits(model, x):
    with noise_scale(model, 0.0):
        return np.asarray(model(x, training=False))


def test_preset_table_is_consistent():
    for name, preset in presets.PRESETS.items():
        assert re.fullmatch(r"[a-z0-9]+_[a-z0-9_]+", name)
        assert name.startswith(preset["dataset"] + "_"), name
        assert preset["defense"] in DEFENSES
        if preset["defense"] != "none":
            assert name.endswith("_" + preset["defense"]), name
        assert f"--defense={preset['defense']}" in preset["command"]
        assert f"--model={preset['model']}" in preset["command"]
        assert preset["deviations"], f"{name}: name the deviations from the paper"
        if preset["weights"] is not None:
            assert set(preset["weights"]) == {"file", "sha256", "url"}
            assert re.fullmatch(r"[0-9a-f]{64}", preset["weights"]["sha256"])
    for required in ("cifar10_vgg16_rse", "cifar10_resnext29_rse", "stl10_modela_rse",
                     "cifar10_wrn28_10_rat", "cifar10_wrn28_10_lerat", "cifar10_wrn28_10_at",
                     "cifar10_vgg16"):
        assert required in zoo.list()


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_every_preset_builds(name):
    model = zoo.build(name)
    preset = presets.PRESETS[name]
    assert model.ensemble_size == preset["ensemble_size"]
    assert model.is_randomized == DEFENSES[preset["defense"]][2]
    assert model.network.count_params() > 500_000  # full-size networks (WRN-16-2: 0.69 M)


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="cifar10_vgg16_rse"):
        zoo.load("cifar10_vgg16_rs")
    with pytest.raises(ValueError, match="name"):
        zoo.get_preset("imagenet_resnet50")


def test_preset_without_weights_prints_its_command(monkeypatch):
    monkeypatch.setitem(presets.PRESETS["cifar10_wrn28_10_rat"], "weights", None)
    with pytest.raises(FileNotFoundError, match="train/fit.py --defense=rat"):
        zoo.load("cifar10_wrn28_10_rat")


def test_load_from_cache_matches_the_trained_weights(tiny_preset):
    trained, _ = tiny_preset
    loaded = zoo.load(TINY)
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    # float16 storage: outputs agree to float16 precision, noise off on both.
    np.testing.assert_allclose(_deterministic_logits(loaded, x),
                               _deterministic_logits(trained, x), rtol=2e-2, atol=2e-2)
    assert loaded.is_randomized


def test_tampered_copy_is_refused(tiny_preset):
    _, path = tiny_preset
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(ValueError, match="Refusing to load .*sha256"):
        zoo.load(TINY)


def test_cache_comes_before_the_checkout_and_a_bad_cached_copy_says_so(tiny_preset, tmp_path,
                                                                        monkeypatch):
    """Resolution order: the cache ($KERAS_RSE_HOME), then the checkout's zoo/ folder."""
    _, cached = tiny_preset
    checkout = tmp_path / "checkout_zoo"
    (checkout / "weights").mkdir(parents=True)
    monkeypatch.setattr(zoo_weights, "source_zoo_dir", lambda: str(checkout))
    os.replace(cached, checkout / "weights" / os.path.basename(cached))
    assert zoo.weights_path(TINY) == str(checkout / "weights" / os.path.basename(cached))
    with open(cached, "wb") as f:  # a truncated download left in the cache
        f.write(b"partial")
    with pytest.raises(ValueError, match=r"Refusing to load .*Delete this copy of the cache"):
        zoo.weights_path(TINY)
    os.remove(cached)
    assert zoo.load(TINY).is_randomized


def test_weights_are_downloaded_into_the_cache_and_verified(tiny_preset, tmp_path,
                                                           monkeypatch):
    """No local copy: keras.utils.get_file fetches the preset's URL (here a file:// one)."""
    _, cached = tiny_preset
    served = tmp_path / "server" / os.path.basename(cached)
    served.parent.mkdir()
    os.replace(cached, served)
    monkeypatch.setattr(zoo_weights, "source_zoo_dir", lambda: None)
    monkeypatch.setitem(presets.PRESETS[TINY]["weights"], "url", served.as_uri())
    assert zoo.weights_path(TINY) == cached and os.path.isfile(cached)
    assert zoo_weights.sha256_of(cached) == presets.PRESETS[TINY]["weights"]["sha256"]
    os.remove(cached)
    with open(served, "ab") as f:  # the server now serves other bytes
        f.write(b"x")
    with pytest.raises(ValueError):
        zoo.weights_path(TINY)


def test_explicit_path_is_verified_and_loaded(tiny_preset, tmp_path):
    _, path = tiny_preset
    model = zoo.load(TINY, weights=path, ensemble_size=3)
    assert model.ensemble_size == 3
    other = tmp_path / "other.npz"
    zoo_weights.save_npz(zoo.build(TINY, seed=9).network, str(other))
    with pytest.raises(ValueError, match=r"Refusing to load.*weights=None\) then "
                                         r"zoo.load_weights"):
        zoo.load(TINY, weights=str(other))
    with pytest.raises(ValueError, match="weights"):
        zoo.load(TINY, weights=str(tmp_path / "missing.npz"))


def test_keras_file_loads_in_safe_mode(tiny_preset, tmp_path):
    trained, _ = tiny_preset
    model = zoo.load(_save(trained, tmp_path))
    with pytest.raises(ValueError, match=r"`weights`.*carries its own.*Received: weights="):
        zoo.load(_save(trained, tmp_path), weights="other.npz")
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(_deterministic_logits(model, x),
                               _deterministic_logits(trained, x), rtol=1e-5, atol=1e-5)


def test_mixed_precision_keras_file_loads_computing_in_float32(tmp_path):
    """A --mixed_precision run's model.keras evaluates in float32, like the presets."""
    import keras

    from keras_rse.models import create_model

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        trained = create_model("vgg16_tiny", seed=5, ensemble_size=7)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.warns(UserWarning, match="loaded to compute in float32"):
        model = zoo.load(_save(trained, tmp_path))
    assert zoo._compute_policies(trained.network) == {"mixed_bfloat16"}
    assert zoo._compute_policies(model.network) == {"float32"}
    assert model.ensemble_size == 7 and model.is_randomized
    for saved, loaded in zip(trained.network.weights, model.network.weights):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(loaded))


def test_npz_of_another_architecture_is_refused(tiny_preset, tmp_path):
    path = tmp_path / "wrong.npz"
    zoo_weights.save_npz(zoo.build("cifar10_vgg16tiny_rse").network, str(path))
    with pytest.raises(ValueError, match="does not match"):
        zoo_weights.load_npz(zoo.build("stl10_modela_rse").network, str(path))


def _weights_equal(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def test_load_weights_from_a_preset_a_npz_or_a_fit_weights_file(tiny_preset, tmp_path):
    """What fit --init_weights starts from: the same weights, whichever the source."""
    trained, npz = tiny_preset
    from_preset = zoo.build(TINY, seed=5).network
    path, digest = zoo.load_weights(from_preset, TINY)
    assert (path, digest) == (npz, presets.PRESETS[TINY]["weights"]["sha256"])
    from_npz = zoo.build(TINY, seed=6).network
    zoo.load_weights(from_npz, npz)
    assert _weights_equal(from_preset, from_npz)
    # A .weights.h5 as train/fit.py writes it: the weights of a SelfEnsemble wrapper.
    h5 = str(tmp_path / "model.weights.h5")
    trained.save_weights(h5)
    from_h5 = zoo.build(TINY, seed=7).network
    assert not _weights_equal(from_h5, trained.network)
    zoo.load_weights(from_h5, h5)
    assert _weights_equal(from_h5, trained.network)


def test_load_weights_refuses_what_it_cannot_load(tiny_preset, tmp_path, monkeypatch):
    network = zoo.build(TINY).network
    with pytest.raises(ValueError, match="`source`.*Received: source='.*missing.npz'"):
        zoo.load_weights(network, str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="did you mean 'cifar10_vgg16_rse'"):
        zoo.load_weights(network, "cifar10_vgg16_rsx")
    wrong = tmp_path / "wrong.npz"
    zoo_weights.save_npz(zoo.build("stl10_modela_rse").network, str(wrong))
    with pytest.raises(ValueError, match="does not match"):
        zoo.load_weights(network, str(wrong))
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"not read")
    with pytest.raises(ValueError, match="model.weights.h5 beside it"):
        zoo.load_weights(network, str(keras_file))
    monkeypatch.setitem(presets.PRESETS["cifar10_wrn28_10_rat"], "weights", None)
    with pytest.raises(FileNotFoundError, match="train/fit.py --defense=rat"):
        zoo.load_weights(network, "cifar10_wrn28_10_rat")  # refused before any weight is read


def test_cards_presets_and_weights_in_step():
    """Every published preset has a card and a file with its hash; the README is generated."""
    found = cards.load_cards(ZOO_DIR)
    for name, card in found.items():
        assert name in presets.PRESETS, f"card for unknown preset {name}"
        spec = presets.PRESETS[name]["weights"]
        assert spec is not None, f"{name} has a card but no published weights"
        assert card["weights"] == {"file": spec["file"], "sha256": spec["sha256"]}
        assert card["attacks"] and all(a["settings"]["eot_samples"] > 1 or not card["randomized"]
                                       for a in card["attacks"])
        assert card["diagnostics"], f"{name}'s card has no diagnostics"
    for name in zoo.list(with_weights=True):
        assert name in found, f"{name} publishes weights without a card"
        spec = presets.PRESETS[name]["weights"]
        path = os.path.join(ZOO_DIR, "weights", spec["file"])
        assert os.path.isfile(path), f"{path} is missing from the checkout"
        assert zoo_weights.sha256_of(path) == spec["sha256"]
    with open(os.path.join(ZOO_DIR, "README.md")) as f:
        assert f.read() == cards.readme_markdown(found), (
            "zoo/README.md is stale: regenerate it with keras_rse.zoo.cards.write_readme()")


@pytest.mark.integration
@pytest.mark.parametrize("name", zoo.list(with_weights=True) or ["cifar10_vgg16_rse"])
def test_shipped_weights_reach_their_card(name):
    """The first 500 test images give a clean ensemble accuracy inside the card's interval.

    The card's interval is that of its 1,000 images; 500 of them vary more, so the interval
    is widened by this sample's own 95 % error (a strict bound could fail good weights by
    chance)."""
    from keras_rse import data, training

    if not os.environ.get("KERAS_RSE_DATA_DIR"):
        pytest.skip("KERAS_RSE_DATA_DIR is not set")
    if presets.PRESETS[name]["weights"] is None:
        pytest.skip(f"{name} has no published weights yet")
    card = cards.load_cards(ZOO_DIR)[name]
    model = zoo.load(name)
    x, y = data.load_split(presets.PRESETS[name]["dataset"], "test", limit=500)
    size = str(model.ensemble_size)
    accuracy = training.ensemble_accuracy(model, x, y, model.ensemble_size)
    expected = card["clean"]["ensemble"][size]
    # 500 images: allow the card's interval widened by this sample's own error.
    half = 1.96 * np.sqrt(expected["accuracy"] * (1 - expected["accuracy"]) / 500)
    low, high = expected["ci95"]
    assert low - half <= accuracy <= high + half, (accuracy, expected)


def test_evaluate_takes_candidate_weights_for_a_published_preset(tiny_preset, tmp_path):
    """--weights=<file>: a retrained candidate is evaluated (not held to the published
    sha256, which zoo.load(name, weights=file) enforces), and no card comes from it."""
    from keras_rse import cli
    from keras_rse._io import sha256_of

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cifar10_test.npz", x=rng.integers(0, 256, (8, 32, 32, 3), np.uint8),
             y=rng.integers(0, 10, 8).astype(np.uint8))
    candidate = str(tmp_path / "candidate.float16.npz")
    zoo_weights.save_npz(zoo.build(TINY, seed=9).network, candidate)
    with pytest.raises(ValueError, match="Refusing to load"):
        zoo.load(TINY, weights=candidate)
    zoo_dir = tmp_path / "zoo"
    cli.evaluate_main([
        "evaluate", f"--model={TINY}", f"--weights={candidate}", f"--data_dir={tmp_path}",
        "--suite=quick", "--n_examples=4", "--n_clean=8", "--eot_samples=2",
        "--ensemble_sizes=1", "--nodiagnostics", "--batch_size=4", "--verbose=0",
        f"--zoo_dir={zoo_dir}", f"--output_dir={tmp_path / 'out'}"])
    report, = json.loads((tmp_path / "out" / "report.json").read_text())["reports"]
    assert report["weights_sha256"] == sha256_of(candidate) != presets.PRESETS[TINY][
        "weights"]["sha256"]
    assert not (zoo_dir / "cards").exists()


def test_cw_rows_of_randomized_models_without_the_new_selection_are_flagged():
    from keras_rse.eval._run import CW_SELECTION

    cw = {"name": "cw_l2_c0.1", "settings": {"attack": "cw", "eot_samples": 10}}
    pgd = {"name": "pgd10", "settings": {"attack": "pgd", "eot_samples": 10}}
    assert cards._attack_label({"randomized": True}, cw) == "cw_l2_c0.1 (old C&W: overstated)"
    one_verdict = dict(cw, settings=dict(cw["settings"],
                                         selection="most clearly fooled by new draws"))
    assert cards._attack_label({"randomized": True}, one_verdict).endswith("overstated)")
    new = dict(cw, settings=dict(cw["settings"], selection=CW_SELECTION))
    assert cards._attack_label({"randomized": True}, new) == "cw_l2_c0.1"
    assert cards._attack_label({"randomized": False}, cw) == "cw_l2_c0.1"  # textbook C&W
    assert cards._attack_label({"randomized": True}, pgd) == "pgd10"


def test_zoo_readme_explains_old_cw_rows_only_when_a_card_has_one():
    from keras_rse.eval._run import CW_SELECTION

    cell = {"accuracy": 0.5, "ci95": [0.4, 0.6], "n": 100}
    settings = {"attack": "cw", "eot_samples": 10, "estimator": "logits"}
    card = {"randomized": True, "n_clean": 100, "weights": {"sha256": "0" * 64},
            "clean": {"single_pass": cell, "ensemble": {"10": cell}}, "diagnostics": [],
            "attacks": [{"name": "cw_l2_c0.1", "settings": settings, "robust": cell,
                         "median_l2_of_successes": None}]}
    assert cards.OLD_CW_NOTE in cards.readme_markdown({TINY: card})
    card["attacks"][0]["settings"] = dict(settings, selection=CW_SELECTION)
    assert cards.OLD_CW_NOTE not in cards.readme_markdown({TINY: card})


def _run_fresh_python(code):
    """Runs ``code`` in a new interpreter (earlier tests' imports cannot help it)."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)


def test_import_keras_rse_alone_reaches_every_subpackage():
    """`import keras_rse` then `keras_rse.zoo.load` / `keras_rse.data.load_split` (the README)."""
    done = _run_fresh_python(
        "import keras_rse\n"
        "for name in keras_rse.__all__[1:]:\n"
        "    getattr(keras_rse, name)\n"
        "keras_rse.zoo.load, keras_rse.data.load_split, keras_rse.eval.evaluate\n")
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.integration
def test_readme_quick_start_runs_as_written():
    """README's first Python block in a new interpreter, on 8 test images instead of 500."""
    if not os.environ.get("KERAS_RSE_DATA_DIR"):
        pytest.skip("KERAS_RSE_DATA_DIR is not set")
    with open(os.path.join(ROOT, "README.md")) as f:
        code = f.read().split("```python\n", 1)[1].split("```", 1)[0]
    assert "limit=500" in code, "README's quick start changed: update this test"
    code = code.replace("limit=500", "limit=8") + (
        "assert probs.shape == (8, 10) and logits.shape == (8, 10)\n"
        "assert abs(probs.sum(axis=1) - 1).max() < 1e-4\n")
    done = _run_fresh_python(code)
    assert done.returncode == 0, done.stderr[-2000:]


def test_evaluate_writes_the_card_of_a_published_preset(tiny_preset, tmp_path):
    """train/evaluate.py --write_card: card = report + verified weights identity + README."""
    from keras_rse import cli

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cifar10_test.npz", x=rng.integers(0, 256, (16, 32, 32, 3), np.uint8),
             y=rng.integers(0, 10, 16).astype(np.uint8))
    zoo_dir = tmp_path / "zoo"
    cli.evaluate_main([
        "evaluate", f"--model={TINY}", f"--data_dir={tmp_path}", "--suite=quick",
        "--n_examples=8", "--n_clean=16", "--eot_samples=2", "--ensemble_sizes=1,2",
        "--n_diagnostic=8", "--batch_size=8", "--verbose=0", "--write_card",
        f"--zoo_dir={zoo_dir}", f"--output_dir={tmp_path / 'out'}"])
    card = cards.load_cards(str(zoo_dir))[TINY]
    assert card["weights"]["sha256"] == presets.PRESETS[TINY]["weights"]["sha256"]
    assert "weights_file" not in card  # no path of the evaluating machine
    assert card["training_command"] == presets.PRESETS[TINY]["command"]
    assert card["test_data"]["source"] == "npz" and len(card["test_data"]["sha256"]) == 64
    assert card["n_clean"] == 16 and set(card["clean"]["ensemble"]) == {"1", "2"}
    assert all(a["settings"]["eot_samples"] == 2 for a in card["attacks"])
    assert len(card["diagnostics"]) == 6  # the CLI's diagnostics reach the card
    with open(zoo_dir / "README.md") as f:
        assert TINY in f.read()


def test_project_readme_shows_the_cards():
    """README.md's cards block is generated from zoo/cards (write_card keeps it in step)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    begin, end = cards.FRONT_DOOR_MARKERS
    assert begin in text and end in text, "README.md lost its generated cards block"
    block = text.split(begin, 1)[1].split(end, 1)[0]
    assert block == "\n" + cards.front_door_table(cards.load_cards(ZOO_DIR))


def test_card_needs_the_diagnostics():
    report = {"attacks": [], "diagnostics": []}
    with pytest.raises(ValueError, match="diagnostics"):
        cards.card_from_report("cifar10_vgg16_rse", report, "w.npz", "0" * 64, "evaluate")


def test_front_door_shows_one_clean_row_for_a_deterministic_model():
    """No noise: 'one noisy pass' and 'self-ensemble of 1' would be the same number twice."""
    clean = {"accuracy": 0.5, "ci95": [0.4, 0.6], "n": 100}
    attack = {"name": "pgd", "settings": {"eot_samples": 1}, "robust": clean}
    card = {"clean": {"single_pass": clean, "ensemble": {"1": clean}}, "ensemble_size": 1,
            "attacks": [attack]}
    deterministic = cards.front_door_table({"d": dict(card, randomized=False)})
    assert "clean (deterministic)" in deterministic and "noisy" not in deterministic
    assert deterministic.count("| d |") == 2
    randomized = cards.front_door_table({"r": dict(card, randomized=True)})
    assert "one noisy pass" in randomized and randomized.count("| r |") == 3

def test_update_front_door_replaces_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    begin, end = cards.FRONT_DOOR_MARKERS
    readme.write_text(f"intro\n{begin}\nold table\n{end}\noutro\n")
    assert cards.update_front_door(str(readme), {})
    assert readme.read_text() == (f"intro\n{begin}\n{cards.front_door_table({})}{end}\n"
                                  "outro\n")
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not cards.update_front_door(str(plain), {})
    assert plain.read_text() == "no markers\n"
