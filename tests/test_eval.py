"""Evaluation: intervals, EOT refusal, the report files, and diagnostics that must fail."""

import importlib
import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_rse import cli, distribute, eval as rse_eval
from keras_rse.distribute import run_attack
from keras_rse.eval import diagnostics
from keras_rse.layers import RandomNoise, set_noise_scale
from keras_rse.models import SelfEnsemble

from conftest import build_small_cnn, build_tiny_network, run_on_two_local_workers

# The module whose attack_accuracy an evaluation calls (patched to simulate a kill).
RUN_MODULE = importlib.import_module("keras_rse.eval._run")


@keras.saving.register_keras_serializable(package="keras_rse_tests")
class StopGradient(keras.layers.Layer):
    """Identity forward, zero gradient backward: the classic masked-gradient defense."""

    def call(self, inputs):
        return tf.stop_gradient(inputs)


def masked(model):
    """``model`` behind a StopGradient: same predictions, zero input gradients."""
    inputs = keras.Input(model.input_shape[1:])
    return keras.Model(inputs, model(StopGradient()(inputs)), name="masked")


def test_wilson_interval_known_values():
    low, high = rse_eval.wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert rse_eval.wilson_interval(0, 20)[0] == 0.0
    assert rse_eval.wilson_interval(20, 20)[1] == 1.0
    assert 0.8 < rse_eval.wilson_interval(20, 20)[0] < 0.9  # never a zero-width interval


def test_randomized_model_without_eot_is_refused_unless_forced(tiny_model, images):
    y = np.zeros(len(images), np.int32)
    with pytest.raises(ValueError, match="eot_samples"):
        rse_eval.evaluate(tiny_model, images, y, eot_samples=1, n_examples=4,
                          ensemble_sizes=(1,), run_diagnostics=False, progress=False)
    report = rse_eval.evaluate(tiny_model, images, y, eot_samples=1, force_no_eot=True,
                               suites_to_run=["quick", "rat_table2"], cw_steps=2,
                               n_examples=4, ensemble_sizes=(1,), run_diagnostics=False,
                               progress=False)
    assert sum("EOT DISABLED" in w for w in report["warnings"]) == 1  # said once, not per suite
    assert "EOT DISABLED" in rse_eval.to_markdown([dict(report, model="tiny")])


def test_deterministic_model_report_records_the_one_draw_its_attacks_use(trained_cnn,
                                                                          attack_data):
    x, y = attack_data
    report = rse_eval.evaluate(SelfEnsemble(trained_cnn), x[:8], y[:8],
                               suites_to_run=["quick", "rat_table2"], cw_steps=2, n_examples=4,
                               ensemble_sizes=(1,), run_diagnostics=False, progress=False)
    assert not report["randomized"] and report["attacks"]
    assert all(a["settings"]["eot_samples"] == 1 for a in report["attacks"])
    assert all("selection" not in a["settings"] for a in report["attacks"])  # textbook C&W
    # PGD-10 at 8/255 with one draw is in both suites: one row, under the first suite.
    assert [(a["name"], a["suite"]) for a in report["attacks"]] == [
        ("fgsm_linf_8/255", "quick"), ("pgd10_linf_8/255", "quick"),
        ("pgd10_linf_0.15 (RAT eps 0.3 on [-1,1])", "rat_table2"),
        ("cw_l2_bs9x2", "rat_table2")]


def _entry(name, suite, accuracy, eot):
    robust = {"accuracy": accuracy, "ci95": [accuracy, accuracy], "n": 100}
    return {"name": name, "suite": suite, "settings": {"eot_samples": eot}, "robust": robust,
            "median_l2_of_successes": None, "attack_success_rate": 0.0, "wall_seconds": 1.0}


def test_markdown_keeps_two_rows_of_one_name_apart():
    """PGD-10 8/255 at EOT 10 (quick) and EOT 50 (rat_table2) are two rows with their own
    numbers; a deterministic baseline, which ran it once under quick, fills both."""
    clean = {"single_pass": {"accuracy": 0.5, "ci95": [0.4, 0.6], "n": 100}, "ensemble": {}}
    common = dict(source="test", n_clean=100, n_examples=100, seed=0, wall_seconds=1.0,
                  warnings=[], clean=clean, sweeps={}, diagnostics=[])
    noisy = dict(common, model="noisy", randomized=True, attacks=[
        _entry("pgd", "quick", 0.31, 10), _entry("pgd", "rat_table2", 0.17, 50)])
    baseline = dict(common, model="plain", randomized=False, attacks=[
        _entry("pgd", "quick", 0.02, 1)])
    rows = [line for line in rse_eval.to_markdown([noisy, baseline]).splitlines()
            if line.startswith("| pgd")]
    assert rows == ["| pgd (quick) | eot_samples=10 | 31.0% [31.0%, 31.0%] | "
                    "2.0% [2.0%, 2.0%] |",
                    "| pgd (rat_table2) | eot_samples=50 | 17.0% [17.0%, 17.0%] | "
                    "2.0% [2.0%, 2.0%] |"]
    # An attack only the second model ran still gets its row, also one whose name a row of
    # another suite has (the deterministic model first this time).
    baseline["attacks"].append(_entry("fgsm", "quick", 0.05, 1))
    rows = [line for line in rse_eval.to_markdown([baseline, noisy]).splitlines()
            if line.startswith("| fgsm") or line.startswith("| pgd")]
    assert rows == ["| pgd (quick) | eot_samples=1 | 2.0% [2.0%, 2.0%] | 31.0% [31.0%, 31.0%] |",
                    "| fgsm | eot_samples=1 | 5.0% [5.0%, 5.0%] | - |",
                    "| pgd (rat_table2) | eot_samples=50 | 2.0% [2.0%, 2.0%] | "
                    "17.0% [17.0%, 17.0%] |"]


def test_markdown_compares_attacks_with_clean_accuracy_on_the_attacked_images():
    """The attack table starts with each model's clean accuracy on the attacked images (the
    clean table's are on n_clean images); a randomized model's entry of one suite is not
    shown in another suite's row of the same name (other EOT settings)."""
    clean = {"single_pass": {"accuracy": 0.5, "ci95": [0.4, 0.6], "n": 1000}, "ensemble": {}}
    common = dict(source="test", n_clean=1000, n_examples=100, seed=0, wall_seconds=1.0,
                  warnings=[], clean=clean, sweeps={}, diagnostics=[])
    quick = dict(_entry("pgd", "quick", 0.31, 10), clean_accuracy_same_examples=0.83)
    both = dict(common, model="both", randomized=True, attacks=[quick])
    rat = dict(_entry("pgd", "rat_table2", 0.17, 50), clean_accuracy_same_examples=0.81)
    rat_only = dict(common, model="rat_only", randomized=True, attacks=[rat])
    older = dict(common, model="older", randomized=True, attacks=[_entry("pgd", "quick", 0.2, 10)])
    lines = rse_eval.to_markdown([both, rat_only, older]).splitlines()
    assert "| clean, no attack | the attacked images | 83.0% | 81.0% | - |" in lines
    assert [line for line in lines if line.startswith("| pgd")] == [
        "| pgd (quick) | eot_samples=10 | 31.0% [31.0%, 31.0%] | - | 20.0% [20.0%, 20.0%] |",
        "| pgd (rat_table2) | eot_samples=50 | - | 17.0% [17.0%, 17.0%] | - |"]
    # Reports without the field (older ones) get no such row.
    assert "clean, no attack" not in rse_eval.to_markdown([older])


def test_bad_arguments_name_the_argument(tiny_model, images):
    y = np.zeros(len(images), np.int32)
    with pytest.raises(ValueError, match="n_examples"):
        rse_eval.evaluate(tiny_model, images, y, n_examples=9, progress=False)
    with pytest.raises(ValueError, match="suite"):
        rse_eval.evaluate(tiny_model, images, y, suites_to_run=["tabel2"], n_examples=4,
                          ensemble_sizes=(1,), run_diagnostics=False, progress=False)
    with pytest.raises(ValueError, match=r"`model`. Expected a keras_rse SelfEnsemble .*"
                                         r"Received: model='Functional'"):
        rse_eval.evaluate(tiny_model.network, images, y, n_examples=4, progress=False)


def test_unknown_suite_or_sweep_fails_before_any_part_runs(tiny_model, images, monkeypatch):
    evaluate_module = importlib.import_module("keras_rse.eval.evaluate")
    monkeypatch.setattr(evaluate_module, "EvaluationRun",
                        lambda *args, **kwargs: pytest.fail("the evaluation started"))
    y = np.zeros(len(images), np.int32)
    for suites_to_run, sweeps, match in ((["quick", "tabel2"], [], r"`suite`.*'tabel2'"),
                                         (["quick"], ["ensembel"], r"`sweep`.*'ensembel'")):
        with pytest.raises(ValueError, match=match):
            rse_eval.evaluate(tiny_model, images, y, suites_to_run=suites_to_run,
                              sweeps=sweeps, n_examples=4, progress=False)


def test_apgd_rand_suite_counts_an_example_broken_by_either_loss(trained_cnn, attack_data,
                                                                 monkeypatch):
    from keras_rse.eval import suites

    x, y = attack_data
    (spec,) = suites.suite_specs("apgd_rand", eot_samples=20)
    assert [part["loss"] for part in spec["attacks"]] == ["ce", "dlr"]
    assert spec["eot_samples"] == 20 and all(
        part["eps"] == 8 / 255 and part["steps"] == 100 for part in spec["attacks"])
    # Shorter and weaker, so that the two parts succeed on different examples.
    spec["attacks"] = [dict(part, eps=4 / 255, steps=5) for part in spec["attacks"]]
    ce_x, ce_success = (t.numpy() for t in suites.make_attack_fn(
        trained_cnn, spec["attacks"][0], seed=0)(x, y))
    assert 0 < ce_success.sum() < len(y)
    dlr_batch_sizes = []
    make_part = suites.make_attack_fn

    def recording(model, part, seed=None, judge=None):
        fn = make_part(model, part, seed, judge)
        if part.get("loss") != "dlr":
            return fn
        return lambda xb, yb: (dlr_batch_sizes.append(xb.shape[0]), fn(xb, yb))[1]

    monkeypatch.setattr(suites, "make_attack_fn", recording)
    x_adv, success = (t.numpy() for t in recording(trained_cnn, spec, seed=0)(x, y))
    # DLR attacked only the survivors of CE, CE's points were kept, and DLR broke more.
    assert dlr_batch_sizes == [int((~ce_success).sum())]
    np.testing.assert_array_equal(x_adv[ce_success], ce_x[ce_success])
    assert success[ce_success].all() and success.sum() > ce_success.sum()
    predicted = np.argmax(trained_cnn.predict(x_adv, verbose=0), axis=1)
    np.testing.assert_array_equal(predicted != y, success)
    # Inside the compiled distributed step (tf.cond, not a Python branch) it agrees.
    in_graph = run_attack(trained_cnn, recording(trained_cnn, spec, seed=0), x, y,
                          batch_size=len(y), progress=False)
    assert abs(in_graph["success"].mean() - success.mean()) <= 0.02
    settings_text = importlib.import_module("keras_rse.eval.report")._settings_text(
        dict(spec, attack_policy="mixed_bfloat16"))
    assert "apgd100_ce" in settings_text and "loss=dlr" in settings_text
    assert "attack_policy=mixed_bfloat16" in settings_text


def test_worst_of_attacks_again_what_the_defended_model_still_classifies_correctly(
        trained_cnn, attack_data):
    """The survivors of the first attack are chosen by the defended model's prediction, not
    by the first attack's own verdict (its EOT draws, or a bfloat16 copy, may call an example
    broken that the model still gets right); a survivor keeps the point the model finds more
    clearly misclassified."""
    from keras_rse.eval import suites

    x, y = (tf.constant(a[:40]) for a in attack_data)
    x = tf.concat([x[:30], tf.zeros_like(x[30:])], axis=0)  # some the model gets wrong
    predicted = np.argmax(trained_cnn.predict(x, verbose=0), axis=1)
    correct = predicted == y.numpy()
    assert 0 < correct.sum() < len(y)
    # Two images of different predicted classes: every label is misclassified on one of them.
    first = int(np.flatnonzero(correct)[0])
    other = int(np.flatnonzero(predicted != predicted[first])[0])
    attacked = []

    def second_attack(x_part, y_part):  # moves each image to one of another class
        attacked.append(int(x_part.shape[0]))
        wrong = tf.where(tf.equal(y_part, int(predicted[first]))[:, None, None, None],
                         x[other], x[first])
        return wrong + tf.zeros_like(x_part), tf.zeros(tf.shape(y_part)[0], tf.bool)

    claimed = tf.ones(len(y), tf.bool)  # the first attack says: all broken, x unchanged
    x_adv, success = suites._attack_survivors(second_attack, x, y, x, claimed, trained_cnn)
    assert attacked == [int(correct.sum())]
    after = np.argmax(trained_cnn.predict(x_adv, verbose=0), axis=1)
    assert (after != y.numpy()).all()  # every survivor took the misclassified point
    np.testing.assert_array_equal(x_adv.numpy()[~correct], x.numpy()[~correct])
    np.testing.assert_array_equal(success.numpy(), ~correct)  # the chosen points' own flags


def test_a_survivor_keeps_the_point_the_judge_finds_more_clearly_misclassified():
    """A judge whose margin of class 0 is 10 (mean pixel - 0.5): the later attack's point
    replaces the earlier one only where its margin is lower, fooled or not; examples already
    misclassified are not attacked; with none left, nothing runs (inside a tf.function too)."""
    from keras_rse.eval import suites

    def judge(images):  # logits [10 (mean - 0.5), 0, ..., 0]
        score = 10.0 * (tf.reduce_mean(images, axis=[1, 2, 3]) - 0.5)
        return tf.one_hot(tf.zeros_like(score, tf.int32), 10) * score[:, None]

    def filled(means):
        return tf.ones([len(means), 2, 2, 1]) * tf.constant(means)[:, None, None, None]

    x, y = filled([0.5] * 4), tf.zeros(4, tf.int64)
    earlier = filled([0.7, 0.7, 0.7, 0.2])  # the last one is already misclassified
    later_means = [0.9, 0.6, 0.3]  # worse, better but still correct, fooled
    attacked = tf.Variable(0)  # examples the later attack received, counted when it runs

    def later_attack(x_part, y_part):
        attacked.assign_add(tf.shape(x_part)[0])
        count = tf.shape(x_part)[0]  # as a real attack's, the output's size is the input's
        return filled(later_means)[:count], tf.constant([False, False, True])[:count]

    @tf.function
    def survivors(earlier_x):
        return suites._attack_survivors(later_attack, x, y, earlier_x,
                                        tf.constant([True, False, True, True]), judge)

    x_adv, success = survivors(earlier)
    kept = tf.reduce_mean(x_adv, axis=[1, 2, 3]).numpy()
    np.testing.assert_allclose(kept, [0.7, 0.6, 0.3, 0.2], atol=1e-6)
    np.testing.assert_array_equal(success.numpy(), [True, False, True, True])
    assert int(attacked.numpy()) == 3
    x_adv, _ = survivors(filled([0.2] * 4))  # every example already misclassified
    assert int(attacked.numpy()) == 3  # the later attack did not run
    np.testing.assert_allclose(tf.reduce_mean(x_adv, axis=[1, 2, 3]).numpy(), [0.2] * 4,
                               atol=1e-6)


@pytest.mark.parametrize("noisy", [True, False])
def test_worst_of_rows_record_how_survivors_are_chosen(
        noisy, tiny_model, trained_cnn, images, attack_data, monkeypatch):
    """The rule is part of the row's settings, and so of its cache key: a part computed with
    the earlier rule is never read back (a deterministic model's too: with a bfloat16 attack
    copy its survivors could differ, and its unbroken points' distortions can)."""
    from keras_rse.eval._run import WORST_OF_SURVIVORS

    specs = []
    fake_entry = {"robust": {"accuracy": 0.5, "ci95": [0.0, 1.0], "n": 4}, "seconds": 0.0}
    monkeypatch.setattr(RUN_MODULE, "attack_accuracy",
                        lambda model, spec, *args, **kwargs: specs.append(spec) or fake_entry)
    model, x = (tiny_model, images) if noisy else (SelfEnsemble(trained_cnn), attack_data[0])
    rse_eval.evaluate(model, x[:4], np.zeros(4, np.int32), suites_to_run=["apgd_rand"],
                      n_examples=4, ensemble_sizes=(1,), run_diagnostics=False, progress=False)
    (spec,) = specs
    assert spec["attack"] == "worst_of"
    assert spec.get("survivors") == WORST_OF_SURVIVORS


def test_success_rate_and_median_l2_are_judged_by_the_defended_model(trained_cnn, attack_data):
    """An attack following another model's gradients: its own success flags are not the
    defended model's verdict; the entry's success statistics use the latter."""
    from keras_rse.eval import suites
    from keras_rse.eval._measure import SUCCESS_JUDGE, attack_accuracy

    x, y = attack_data[0][:60], attack_data[1][:60]
    (spec,) = [s for s in suites.suite_specs("quick", 1) if s["attack"] == "pgd"]
    entry = attack_accuracy(trained_cnn, dict(spec, eps=2 / 255, step_size=0.5 / 255), x, y,
                            attack_model=build_small_cnn(seed=3),
                            progress=False)
    clean = entry["clean_accuracy_same_examples"]
    fooled = round((clean - entry["robust"]["accuracy"]) * len(y))
    assert entry["successes_judged_by"] == SUCCESS_JUDGE
    assert entry["successes_on_correct_examples"] == fooled
    assert entry["attack_success_rate"] == pytest.approx(fooled / round(clean * len(y)))
    assert entry["attack_own_success_rate"] != pytest.approx(entry["attack_success_rate"])


def test_a_part_asked_for_twice_is_computed_once_and_not_called_resumed(tmp_path):
    """A sweep repeating a suite's attack: one computation, counted once, not 'read back'."""
    from keras_rse.eval._resume import ResumeCache

    calls = []

    def compute():
        calls.append(1)
        return {"accuracy": 0.5, "seconds": 2.0}

    for directory in (None, str(tmp_path)):
        calls.clear()
        cache = ResumeCache(directory, {"model": "m"})
        first = cache.get_or_compute("attack", {"spec": 1}, compute, label="a")
        again = cache.get_or_compute("attack", {"spec": 1}, compute, label="a")
        assert first == again and calls == [1]
        assert cache.resumed == [] and cache.compute_seconds == 2.0
    later = ResumeCache(str(tmp_path), {"model": "m"})  # the next evaluation reads it back
    assert later.get_or_compute("attack", {"spec": 1}, compute, label="a") == first
    assert later.resumed == ["a"] and calls == [1]


def test_tiny_suite_end_to_end_writes_json_markdown_and_png(tiny_model, images, tmp_path):
    y = np.arange(len(images), dtype=np.int32) % 10
    report = rse_eval.evaluate(
        tiny_model, images, y, suites_to_run=["quick", "rse_table2"], sweeps=["eps", "ensemble"],
        eot_samples=2, n_examples=4, ensemble_sizes=(1, 3), cw_steps=3, n_diagnostic=4,
        progress=False)
    report.update(model="tiny", source="test", dataset="synthetic")
    written = rse_eval.write_report([report], str(tmp_path))
    assert {p.rsplit("/", 1)[-1] for p in written} == {
        "report.json", "report.md", "attacks.png", "sweep_eps.png", "sweep_ensemble.png"}
    saved = json.loads((tmp_path / "report.json").read_text())["reports"][0]
    names = [a["name"] for a in saved["attacks"]]
    assert names[:2] == ["fgsm_linf_8/255", "pgd10_linf_8/255"]
    assert [a["settings"]["c"] for a in saved["attacks"][2:]] == [0.01, 0.03, 0.06, 0.1, 0.2]
    # C&W on a randomized model records how it picked its result (cards flag rows without).
    from keras_rse.eval._run import CW_SELECTION

    assert all(a["settings"]["selection"] == CW_SELECTION for a in saved["attacks"][2:])
    for attack in saved["attacks"]:
        assert attack["robust"]["n"] == 4 and attack["settings"]["eot_samples"] == 2
        low, high = attack["robust"]["ci95"]
        assert low <= attack["robust"]["accuracy"] <= high
    assert set(saved["clean"]["ensemble"]) == {"1", "3"}
    assert len(saved["diagnostics"]) == 6
    assert (tmp_path / "attacks.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (tmp_path / "report.md").read_text()
    assert "cw_l2_c0.2" in markdown and "noise reseeded per part" in markdown
    # A report written before the noise_seeding field existed does not claim a scheme.
    older = {k: v for k, v in saved.items() if k != "noise_seeding"}
    assert "how the noise was seeded is not recorded" in rse_eval.to_markdown([older])


def _without_seconds(entries):
    """Report entries with their timings dropped (the only fields allowed to differ)."""
    return [{k: v for k, v in entry.items() if k not in ("seconds", "wall_seconds")}
            for entry in entries]


def test_interrupted_evaluation_resumes_and_never_reuses_stale_parts(tiny_model, images,
                                                                     tmp_path, monkeypatch):
    """A run killed after its first attack recomputes only what is missing; new weights, all."""
    y = np.arange(len(images), dtype=np.int32) % 10
    settings = dict(suites_to_run=["quick"], eot_samples=2, n_examples=4, ensemble_sizes=(1, 2),
                    n_diagnostic=4, progress=False, resume_dir=str(tmp_path / "parts"))
    calls = []
    real_attack = RUN_MODULE.attack_accuracy

    def killed_after_first_attack(model, spec, *args, **kwargs):
        if calls:
            raise KeyboardInterrupt("simulated kill")
        calls.append(spec["name"])
        return real_attack(model, spec, *args, **kwargs)

    monkeypatch.setattr(RUN_MODULE, "attack_accuracy", killed_after_first_attack)
    with pytest.raises(KeyboardInterrupt):
        rse_eval.evaluate(tiny_model, images, y, **settings)
    monkeypatch.setattr(RUN_MODULE, "attack_accuracy", real_attack)
    resumed = rse_eval.evaluate(tiny_model, images, y, **settings)
    assert resumed["resumed_parts"] == ["clean", "fgsm_linf_8/255"]
    # Reseeded per part, the killed and resumed run reports what one run would have.
    uninterrupted = rse_eval.evaluate(tiny_model, images, y, **dict(settings, resume_dir=None))
    for key in ("attacks", "diagnostics"):
        assert _without_seconds(resumed[key]) == _without_seconds(uninterrupted[key])
    assert resumed["clean"]["ensemble"] == uninterrupted["clean"]["ensemble"]
    again = rse_eval.evaluate(tiny_model, images, y, **settings)
    assert set(again["resumed_parts"]) == {"clean", "fgsm_linf_8/255", "pgd10_linf_8/255"} | {
        f"diagnostic {check['name']}" for check in resumed["diagnostics"]}
    for key in ("clean", "attacks", "diagnostics"):
        assert again[key] == resumed[key]
    # The run that only read its parts back reports what they cost, not its own seconds.
    assert again["untimed_parts"] == [] and again["compute_seconds"] > 0
    assert again["compute_seconds"] == pytest.approx(resumed["compute_seconds"], abs=0.05)
    assert "all parts, those read back included, took" in rse_eval.to_markdown([
        dict(again, model="tiny")])
    tiny_model.network.weights[0].assign(tiny_model.network.weights[0] * 1.01)
    assert rse_eval.evaluate(tiny_model, images, y, **settings)["resumed_parts"] == []


def test_same_evaluation_gives_the_same_numbers_whatever_the_noise_drew_before(
        tiny_model, images, monkeypatch):
    """Each part reseeds the model's noise from the seed and the part; without it, runs differ."""
    y = np.arange(len(images), dtype=np.int32) % 10
    settings = dict(suites_to_run=["quick"], eot_samples=2, n_examples=8, ensemble_sizes=(1, 3),
                    n_diagnostic=4, progress=False, batch_size=4)

    def numbers(report):
        return (_without_seconds([report["clean"]]), _without_seconds(report["attacks"]),
                _without_seconds(report["diagnostics"]))

    first = numbers(rse_eval.evaluate(tiny_model, images, y, **settings))
    tiny_model.predict(images, verbose=0)  # draws noise: moves every generator on
    assert numbers(rse_eval.evaluate(tiny_model, images, y, **settings)) == first
    assert numbers(rse_eval.evaluate(tiny_model, images, y, **dict(settings, seed=1))) != first
    # The test can fail: without the reseeding the same two runs give different numbers.
    monkeypatch.setattr(RUN_MODULE, "reseed_random_generators", lambda *args: 0)
    unseeded = numbers(rse_eval.evaluate(tiny_model, images, y, **settings))
    assert numbers(rse_eval.evaluate(tiny_model, images, y, **settings)) != unseeded


@pytest.mark.parametrize("noisy", [False, True], ids=["trained_cnn", "noise_then_trained_cnn"])
def test_evaluation_killed_inside_an_attack_keeps_its_finished_batches(trained_cnn, attack_data,
                                                                        tmp_path, monkeypatch,
                                                                        noisy):
    """A kill after one batch of a long attack costs only the unfinished batches."""
    # Input noise four times the classes' difference (0.05): its draws change the numbers.
    network = keras.Sequential([keras.Input((16, 16, 3)), RandomNoise(0.2), trained_cnn]) if (
        noisy) else trained_cnn
    model = SelfEnsemble(network, ensemble_size=1)
    x, y = attack_data[0][:40], attack_data[1][:40]
    settings = dict(suites_to_run=["quick"], n_examples=40, ensemble_sizes=(1,),
                    run_diagnostics=False, progress=False, batch_size=16)
    uninterrupted = rse_eval.evaluate(model, x, y, **settings)
    settings["resume_dir"] = str(tmp_path / "parts")
    real_run_attack = distribute.run_attack
    calls = []

    def killed_after_one_batch(*args, on_batch, finished, **kwargs):
        calls.append(len(finished))

        def keep_then_die(number, results):
            on_batch(number, results)
            raise KeyboardInterrupt("simulated kill")

        return real_run_attack(*args, on_batch=keep_then_die, finished=finished, **kwargs)

    monkeypatch.setattr(distribute, "run_attack", killed_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        rse_eval.evaluate(model, x, y, **settings)
    assert calls == [0]
    monkeypatch.setattr(distribute, "run_attack", lambda *a, **k: (
        calls.append(len(k["finished"])), real_run_attack(*a, **k))[1])
    resumed = rse_eval.evaluate(model, x, y, **settings)
    assert calls == [0, 1, 0]  # FGSM resumed after its first batch of 16; PGD from scratch
    assert resumed["resumed_parts"] == ["clean"]
    # Equal to the last digit, noise included: each batch reseeds the noise.
    assert _without_seconds(resumed["attacks"]) == _without_seconds(uninterrupted["attacks"])
    assert all(after["wall_seconds"] > 0 for after in resumed["attacks"])


def test_healthy_undefended_model_passes_its_checks(trained_cnn, attack_data):
    x, y = attack_data[0][:48], attack_data[1][:48]
    results = {r["name"]: r for r in diagnostics.run_all(trained_cnn, x, y, eot_samples=4)}
    assert results["noise_active"]["status"] == "skipped"  # deterministic
    assert results["more_eot_not_weaker"]["status"] == "skipped"
    for name in ("gradients_nonzero", "unbounded_attack", "more_steps_not_weaker"):
        assert results[name]["status"] == "pass", results[name]


def test_noise_switched_off_is_flagged(tiny_model, images):
    assert diagnostics.check_noise_active(tiny_model, images)["status"] == "pass"
    set_noise_scale(tiny_model, 0.0)
    assert diagnostics.check_noise_active(tiny_model, images)["status"] == "fail"


def test_masked_gradients_are_flagged(trained_cnn, attack_data):
    x, y = attack_data[0][:48], attack_data[1][:48]
    model = masked(trained_cnn)
    assert diagnostics.check_gradients_nonzero(model, x, y, 1)["status"] == "fail"
    assert diagnostics.check_unbounded_attack(model, x, y, 1)["status"] == "fail"
    # A transfer attack from the unmasked network beats the (useless) white-box one.
    transfer = diagnostics.check_transfer(model, x, y, 8 / 255, 1, surrogate=trained_cnn)
    assert transfer["status"] == "fail", transfer


def test_stronger_attack_counts_as_weaker_only_beyond_paired_chance():
    weak, strong = np.zeros(64, bool), np.zeros(64, bool)
    strong[:8] = True  # 8 examples robust only under the stronger attack, none the other way
    weaker, values = diagnostics.stronger_is_weaker(weak, strong)
    assert weaker and values["only_stronger_robust"] == 8 and values["only_weaker_robust"] == 0
    # The same 8 against 6 the other way is what two noisy verdicts do: not flagged.
    weak[8:14] = True
    assert not diagnostics.stronger_is_weaker(weak, strong)[0]
    assert not diagnostics.stronger_is_weaker(strong, strong)[0]  # identical outcomes
    with pytest.raises(ValueError, match="same shape"):
        diagnostics.stronger_is_weaker(weak, strong[:10])
    # The boundary with no discordance the other way: 5 > 1.96 sqrt(5) + 1 = 5.38 is false,
    # 6 > 5.80 is true.
    weak[:] = False
    strong[:] = False
    strong[:5] = True
    assert not diagnostics.stronger_is_weaker(weak, strong)[0]
    strong[5] = True
    assert diagnostics.stronger_is_weaker(weak, strong)[0]


def test_paired_checks_share_one_clean_verdict(trained_cnn, attack_data):
    x, y = attack_data[0][:16], attack_data[1][:16]
    predicted = diagnostics.predicted_classes(trained_cnn, x) == y
    assert np.array_equal(diagnostics.robust_examples(trained_cnn, x, x, y), predicted)
    # A clean verdict passed in is used as given, not predicted again.
    wrong_on_clean = np.zeros(len(x), bool)
    assert not diagnostics.robust_examples(trained_cnn, x, x, y, clean=wrong_on_clean).any()


def test_more_steps_that_weaken_the_attack_are_flagged(trained_cnn, attack_data, monkeypatch):
    """A PGD whose 20-step run gives up (returns the clean images) fails the check."""
    x, y = attack_data[0][:48], attack_data[1][:48]
    real_pgd = diagnostics.pgd

    def pgd_giving_up_at_20_steps(model, images, labels, *, steps, **kwargs):
        result = real_pgd(model, images, labels, steps=steps, **kwargs)
        return result._replace(x_adv=images) if steps == 20 else result

    monkeypatch.setattr(diagnostics, "pgd", pgd_giving_up_at_20_steps)
    check = diagnostics.check_more_steps(trained_cnn, x, y, 8 / 255, 1)
    assert check["status"] == "fail", check
    assert check["values"]["only_weaker_robust"] == 0, check


def test_more_eot_samples_that_weaken_the_attack_are_flagged(trained_cnn, attack_data,
                                                            monkeypatch):
    """A PGD whose run with more EOT draws gives up (returns the clean images) fails."""
    x, y = attack_data[0][:48], attack_data[1][:48]
    real_pgd = diagnostics.pgd

    def pgd_giving_up_with_8_draws(model, images, labels, *, eot_samples, **kwargs):
        if eot_samples == 8:
            return real_pgd(model, images, labels, eot_samples=1, **kwargs)._replace(
                x_adv=images)
        return real_pgd(model, images, labels, eot_samples=eot_samples, **kwargs)

    monkeypatch.setattr(diagnostics, "pgd", pgd_giving_up_with_8_draws)
    # The check runs on randomized models only: the deterministic CNN passes as one here.
    monkeypatch.setattr(diagnostics, "noise_layers", lambda model: [model])
    check = diagnostics.check_more_eot(trained_cnn, x, y, 8 / 255, 8)
    assert check["values"]["eot_samples"] == [2, 8]
    assert check["status"] == "fail", check
    assert check["values"]["only_weaker_robust"] == 0, check


def test_evaluate_cli_on_a_keras_file(tmp_path, monkeypatch):
    """train/evaluate.py's main on a saved tiny model and a fake CIFAR-10 directory."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cifar10_test.npz", x=rng.integers(0, 256, (16, 32, 32, 3), np.uint8),
             y=rng.integers(0, 10, 16).astype(np.uint8))
    from keras_rse.models import create_model

    model = create_model("vgg16_tiny", ensemble_size=2)
    model.save(tmp_path / "tiny.keras")
    reports = cli.evaluate_main([
        "evaluate", f"--model={tmp_path / 'tiny.keras'}", f"--data_dir={tmp_path}",
        "--n_examples=8", "--n_clean=16", "--eot_samples=2", "--ensemble_sizes=1,2",
        "--nodiagnostics", "--batch_size=8", "--verbose=0",
        f"--output_dir={tmp_path / 'out'}"])
    # Diagnostics through the CLI are covered by the card test (tests/test_zoo.py).
    assert reports[0]["n_clean"] == 16 and reports[0]["ensemble_size"] == 2
    assert reports[0]["diagnostics"] == []
    assert "diagnostics not run" in (tmp_path / "out" / "report.md").read_text()
    assert len(reports[0]["weights_sha256"]) == 64
    assert "attacks on the first 8" in (tmp_path / "out" / "report.md").read_text()


def test_evaluate_cli_clean_accuracy_only(tmp_path):
    """--suite= with --nodiagnostics measures clean accuracy and attacks nothing."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cifar10_test.npz", x=rng.integers(0, 256, (12, 32, 32, 3), np.uint8),
             y=rng.integers(0, 10, 12).astype(np.uint8))
    from keras_rse.models import create_model

    create_model("vgg16_tiny", ensemble_size=2).save(tmp_path / "tiny.keras")
    report = cli.evaluate_main([
        "evaluate", f"--model={tmp_path / 'tiny.keras'}", f"--data_dir={tmp_path}", "--suite=",
        "--n_examples=1", "--n_clean=12", "--ensemble_sizes=1,3", "--nodiagnostics",
        "--verbose=0", f"--output_dir={tmp_path / 'out'}"])[0]
    assert report["suites"] == [] and report["attacks"] == [] and report["sweeps"] == {}
    assert report["clean"]["single_pass"]["n"] == 12
    assert sorted(report["clean"]["ensemble"]) == ["1", "3"]
    assert "12 images, no attacks" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_evaluate_with_two_workers_on_localhost(tmp_path):
    """train/evaluate.py under MultiWorkerMirroredStrategy: both finish, the chief reports."""
    from keras_rse.models import create_model

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cifar10_test.npz", x=rng.integers(0, 256, (16, 32, 32, 3), np.uint8),
             y=rng.integers(0, 10, 16).astype(np.uint8))
    create_model("vgg16_tiny", ensemble_size=2).save(tmp_path / "tiny.keras")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run_on_two_local_workers([
        sys.executable, os.path.join(root, "train", "evaluate.py"),
        f"--model={tmp_path / 'tiny.keras'}", f"--data_dir={tmp_path}", "--suite=quick",
        "--n_examples=8", "--n_clean=16", "--eot_samples=2", "--ensemble_sizes=1,2",
        "--n_diagnostic=8", "--batch_size=8", "--verbose=0", "--distribute=multiworker",
        f"--output_dir={tmp_path / 'out'}"])
    report = json.loads((tmp_path / "out" / "report.json").read_text())["reports"][0]
    assert report["replicas"] == 2 and report["distribute"] == "multiworker"
    assert [a["robust"]["n"] for a in report["attacks"]] == [8, 8]
    assert len(report["diagnostics"]) == 6 and report["resumed_parts"] == []
    assert not (tmp_path / "out" / ".partial").exists()  # no resume cache across hosts


@pytest.mark.parametrize("extra", [["--force_no_eot", "--eot_samples=1"], ["--nodiagnostics"]])
def test_evaluate_cli_refuses_a_card_without_eot_or_diagnostics(extra):
    with pytest.raises(ValueError, match="--write_card with --"):
        cli.evaluate_main(["evaluate", "--model=cifar10_vgg16_rse", "--write_card", *extra])


def test_evaluate_cli_names_a_bad_ensemble_size_before_loading_anything():
    with pytest.raises(ValueError, match=r"`--ensemble_sizes`.*Received: ensemble_sizes='1,ten'"):
        cli.evaluate_main(["evaluate", "--model=no_such_preset", "--ensemble_sizes=1,ten"])


@pytest.mark.parametrize("extra, match", [
    (["--suite=quick,tabel2"], r"`--suite`.*Received: suite='tabel2'"),
    (["--sweeps=eps,ensembel"], r"`--sweeps`.*Received: sweeps='ensembel'"),
    (["--model=no_such_run/model.keras"], r"`--model`. Expected an existing file"),
    (["--weights=no_such.npz"], r"`--weights`. Expected an existing file"),
    (["--model=run/model.keras", "--weights=w.npz"], r"--weights=w.npz with a .keras"),
    (["--write_card", "--weights=w.npz"], r"--write_card with --model=no_such_preset "
                                          r"--weights=w.npz"),
])
def test_evaluate_cli_refuses_bad_flags_before_loading_anything(extra, match):
    """Names and combinations are checked first, not after hours of attacks."""
    with pytest.raises(ValueError, match=match):
        cli.evaluate_main(["evaluate", "--model=no_such_preset", *extra])


def test_the_surrogate_is_not_used_on_itself(tmp_path):
    """--baseline cifar10_vgg16 --transfer_from cifar10_vgg16: the baseline's transfer check
    would be its own white-box attack, so it gets the default surrogate."""
    from keras_rse.cli import _evaluate, _flags

    keras_file = tmp_path / "model.keras"
    keras_file.write_text("")
    _flags.parse(["evaluate", "--model=cifar10_vgg16_rse", "--transfer_from=cifar10_vgg16"])
    assert _evaluate._is_the_surrogate("cifar10_vgg16", "default")
    assert not _evaluate._is_the_surrogate("cifar10_vgg16_rse", "default")
    assert not _evaluate._is_the_surrogate("cifar10_vgg16", "candidate.npz")
    _flags.parse(["evaluate", "--model=x", f"--transfer_from={keras_file}"])
    assert _evaluate._is_the_surrogate(str(keras_file), "default")
    _flags.parse(["evaluate", "--model=x"])
    assert not _evaluate._is_the_surrogate("cifar10_vgg16", "default")


def test_default_report_folder_names_the_preset_or_the_run():
    from keras_rse.cli._evaluate import _default_output_dir

    assert _default_output_dir("cifar10_vgg16_rse") == os.path.join("reports",
                                                                     "cifar10_vgg16_rse")
    assert _default_output_dir("runs/vgg16_rse/model.keras") == os.path.join("reports",
                                                                             "vgg16_rse")
    assert _default_output_dir("tiny.keras") == os.path.join("reports", "tiny")


def test_self_ensemble_wraps_tiny_network_for_reports(images):
    # The prediction used by every report is the self-ensemble's argmax.
    model = SelfEnsemble(build_tiny_network(), ensemble_size=3)
    classes = diagnostics.predicted_classes(model, images)
    assert classes.shape == (len(images),) and classes.dtype.kind == "i"
