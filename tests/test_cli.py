"""train/fit.py end to end on tiny data: artifacts, resume after SIGKILL, bad flags."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_rse import cli

from conftest import make_synthetic_dataset, run_on_two_local_workers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory):
    """A fake 'cifar10' directory: 400 train / 100 test images of the npz layout."""
    folder = tmp_path_factory.mktemp("data")
    for split, count, seed in (("train", 400, 1), ("test", 100, 2)):
        x, y = make_synthetic_dataset(count, seed=seed)
        big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)  # 16x16 -> 32x32
        np.savez(folder / f"cifar10_{split}.npz", x=(big * 255).astype(np.uint8),
                 y=y.astype(np.uint8))
    return str(folder)


def _flags(data_dir, workdir, *extra):
    return ["fit", f"--data_dir={data_dir}", f"--workdir={workdir}", "--model=vgg16_tiny",
            "--validation_size=100", "--batch_size=50", "--verbose=0", *extra]


def test_fit_main_writes_every_artifact(tiny_data_dir, tmp_path):
    summary = cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=rse", "--epochs=1"))
    for name in ("config.json", "log.csv", "model.keras", "model.weights.h5", "summary.json"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "tensorboard").is_dir() and (tmp_path / "checkpoints").is_dir()
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["weights_sha256"] == summary["weights_sha256"]
    assert 0 <= saved["validation_accuracy_ensemble"] <= 1
    import keras

    model = keras.saving.load_model(str(tmp_path / "model.keras"), safe_mode=True)
    assert model.ensemble_size == 10 and model.is_randomized


def test_fit_without_workdir_writes_to_a_named_default(tiny_data_dir, tmp_path, monkeypatch):
    """`python3 train/fit.py --defense lerat` alone works: runs/<dataset>_<model>_<defense>."""
    monkeypatch.chdir(tmp_path)
    argv = [flag for flag in _flags(tiny_data_dir, "unused", "--defense=none", "--epochs=1",
                                    "--train_examples=200")
            if not flag.startswith("--workdir")]
    cli.fit_main(argv)
    config = json.loads((tmp_path / "runs" / "cifar10_vgg16_tiny_none" / "config.json").read_text())
    assert config["workdir"] == os.path.join("runs", "cifar10_vgg16_tiny_none")
    # fit's flags only (restarts compare them), not evaluate's or export's.
    assert {"defense", "seed", "checkpoint_every", "init_weights"} <= set(config)
    assert not {"suite", "n_examples", "write_card", "source"} & set(config)


def test_restart_with_other_settings_says_what_changed_or_is_refused(tiny_data_dir, tmp_path,
                                                                    capsys):
    cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=none", "--epochs=1",
                        "--train_examples=200"))
    assert "was started with other settings" not in capsys.readouterr().out
    cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=none", "--epochs=1",
                        "--train_examples=200", "--learning_rate=0.5"))
    out = capsys.readouterr().out
    assert "was started with other settings (learning_rate None -> 0.5)" in out
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["learning_rate"] == 0.5 and config["earlier_starts"] == [{"learning_rate": None}]
    cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=none", "--epochs=2",
                        "--train_examples=200", "--learning_rate=0.5"))
    out = capsys.readouterr().out
    assert "(epochs 1 -> 2)" in out and "they move with --epochs" in out
    # Read from the checkpoint files before anything is written: config.json stays as it was.
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(ValueError, match=r"flag `--epochs`.*at least the 2 epochs the "
                                         r"checkpoint.*Received: epochs=1"):
        cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=none", "--epochs=1",
                            "--train_examples=200", "--learning_rate=0.5"))
    assert (tmp_path / "config.json").read_text() == before
    with pytest.raises(ValueError, match=r"holds a run with other settings \(seed: 0 there, 1 "
                                         r"now\)"):
        cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=none", "--epochs=1",
                            "--train_examples=200", "--seed=1"))


def test_a_failed_start_does_not_lock_the_workdir(tiny_data_dir, tmp_path):
    """A misspelled --model fails after config.json is written; with no checkpoint there,
    the corrected command starts instead of being refused as 'another run'."""
    with pytest.raises(Exception, match="vgg16_tinyy"):
        cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=none", "--epochs=1",
                            "--train_examples=200", "--model=vgg16_tinyy"))
    summary = cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=none", "--epochs=1",
                                  "--train_examples=200"))
    assert summary["model"] == "vgg16_tiny"


def test_a_run_from_before_the_weight_decay_flag_resumes_only_decoupled(tiny_data_dir, tmp_path):
    """A config.json without weight_decay_style comes from a run with Keras's decoupled
    decay: resuming its checkpoint with the coupled default is refused."""
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    (tmp_path / "config.json").write_text(json.dumps({"defense": "none", "seed": 0}))
    with pytest.raises(ValueError, match=r"weight_decay_style: 'decoupled' there, 'coupled' "
                                         r"now"):
        cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=none", "--epochs=1"))


def test_lerat_noise_scales_stay_out_of_the_coupled_weight_decay(tiny_data_dir, tmp_path):
    from keras_rse.cli import _fit
    from keras_rse.cli._flags import parse
    from keras_rse.layers import LearnedNoise, noise_layers

    parse(_flags(tiny_data_dir, tmp_path, "--defense=lerat", "--model=wide_resnet10_1"))
    model = _fit._build("lerat", "wide_resnet10_1", 100, "rat")
    noise = [w for layer in noise_layers(model.network) if isinstance(layer, LearnedNoise)
             for w in layer.trainable_weights]
    kernels = [w for w in model.network.trainable_weights if "kernel" in w.path]
    assert noise and kernels and model.optimizer.l2 == pytest.approx(2e-3)
    assert not any(model.optimizer._use_weight_decay(w) for w in noise)
    assert all(model.optimizer._use_weight_decay(w) for w in kernels)


# distill runs fit's two-phase path (phase 1 in its own folder, its network handed to
# phase 2); fgsm_retrain takes the same path (weights copied instead): slow tier.
@pytest.mark.parametrize("defense", ["at", "distill",
                                     pytest.param("fgsm_retrain", marks=pytest.mark.slow)])
def test_fit_main_other_defenses(defense, tiny_data_dir, tmp_path):
    extra = ["--model=wide_resnet10_1", "--attack_steps=1"] if defense == "at" else []
    summary = cli.fit_main(_flags(tiny_data_dir, tmp_path, f"--defense={defense}",
                                  "--epochs=1", *extra))
    assert summary["defense"] == defense and (tmp_path / "model.keras").is_file()


@pytest.mark.slow
def test_resume_after_sigkill(tiny_data_dir, tmp_path):
    command = [sys.executable, os.path.join(ROOT, "train", "fit.py"),
               *_flags(tiny_data_dir, tmp_path, "--defense=rse", "--epochs=4")[1:]]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    index = tmp_path / "checkpoints" / "checkpoint"
    while not index.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # no clean-up of any kind
    proc.wait()
    assert index.exists(), "the first epoch's checkpoint never appeared"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Resuming from the checkpoint of epoch" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["resumed_from_epoch"] >= 1
    epochs_logged = [int(line.split(",")[0]) for line in
                     (tmp_path / "log.csv").read_text().splitlines()[1:] if line[:1].isdigit()]
    assert sorted(set(epochs_logged)) == [0, 1, 2, 3]  # every epoch ran; none skipped


def test_fit_under_mirrored_strategy_on_two_logical_cpus(tiny_data_dir, tmp_path):
    """fit runs on 2 replicas, and --init_weights (assigned in the strategy's scope)
    reaches them: at lr 1e-20 the run ends with the initial weights."""
    from keras_rse import models
    from keras_rse.zoo import weights as zoo_weights

    source = models.create_model("vgg16_tiny", init_noise=0.2, inner_noise=0.1, seed=11).network
    npz = str(tmp_path / "start.float32.npz")
    zoo_weights.save_npz(source, npz, dtype="float32")
    command = [sys.executable, os.path.join(ROOT, "train", "fit.py"),
               *_flags(tiny_data_dir, tmp_path / "run", "--defense=rse", "--epochs=1",
                       "--learning_rate=1e-20", "--weight_decay=0", f"--init_weights={npz}",
                       "--distribute=mirrored", "--cpu_devices=2")[1:]]
    done = subprocess.run(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["distribute"] == "mirrored"
    assert summary["init_weights"]["file"] == npz
    import keras

    end = keras.saving.load_model(str(tmp_path / "run" / "model.keras")).network
    for a, b in zip(source.trainable_weights, end.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)


def test_fit_with_two_workers_on_localhost(tiny_data_dir, tmp_path):
    """MultiWorkerMirroredStrategy: the chief writes the run; worker 1 leaves nothing behind."""
    run_on_two_local_workers([
        sys.executable, os.path.join(ROOT, "train", "fit.py"),
        *_flags(tiny_data_dir, tmp_path, "--defense=rse", "--epochs=2",
                "--distribute=multiworker")[1:]])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["distribute"] == "multiworker"
    epochs_logged = [line.split(",")[0] for line in
                     (tmp_path / "log.csv").read_text().splitlines()[1:]]
    assert epochs_logged == ["0", "1"]  # one writer: each epoch logged once
    assert sorted(os.listdir(tmp_path / "checkpoints"))[0] == "checkpoint"
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".scratch")]


def test_fit_starts_from_init_weights(tiny_data_dir, tmp_path):
    """A run at a vanishing learning rate from --init_weights ends where it started."""
    import keras

    from keras_rse import models
    from keras_rse._io import sha256_of

    # A .weights.h5 as fit writes it (the weights of a SelfEnsemble), of another seed.
    start = models.create_model("vgg16_tiny", init_noise=0.2, inner_noise=0.1, seed=11)
    source = str(tmp_path / "start.weights.h5")
    start.save_weights(source)
    start = start.network
    again = cli.fit_main(_flags(tiny_data_dir, tmp_path / "again", "--defense=rse",
                                "--epochs=1", "--learning_rate=1e-20", "--weight_decay=0",
                                f"--init_weights={source}"))
    assert again["init_weights"] == {"source": source, "file": source,
                                     "sha256": sha256_of(source)}
    config = json.loads((tmp_path / "again" / "config.json").read_text())
    assert config["init_weights"] == source
    end = keras.saving.load_model(str(tmp_path / "again" / "model.keras")).network
    for a, b in zip(start.trainable_weights, end.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)
    # A resume keeps its checkpoint and its record, whatever --init_weights says now (the
    # full VGG16's weights would not even fit this tiny model).
    resumed = cli.fit_main(_flags(tiny_data_dir, tmp_path / "again", "--defense=rse",
                                  "--epochs=1", "--init_weights=cifar10_vgg16"))
    assert resumed["init_weights"] == again["init_weights"]
    after_resume = keras.saving.load_model(str(tmp_path / "again" / "model.keras")).network
    for a, b in zip(end.weights, after_resume.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_random_start_drops_the_record_of_a_start_killed_before_its_checkpoint(
        tiny_data_dir, tmp_path):
    """An init_weights.json without checkpoint (a start from --init_weights killed before
    its first checkpoint) must not be reported by a later random start and its resumes."""
    record = tmp_path / "init_weights.json"
    record.write_text(json.dumps({"source": "cifar10_vgg16", "file": "x.npz", "sha256": "0"}))
    summary = cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=rse", "--epochs=1"))
    assert summary["init_weights"] is None
    assert not record.exists()
    resumed = cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=rse", "--epochs=2"))
    assert resumed["init_weights"] is None


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not os.environ.get("KERAS_RSE_DATA_DIR"),
                    reason="KERAS_RSE_DATA_DIR (real CIFAR-10 npz files) is not set")
def test_rse_on_real_cifar10_learns(tmp_path):
    """A few hundred noisy-SGD steps on real CIFAR-10 reach accuracy well above chance."""
    # The recipe's lr 0.1 (right for the full VGG16) is too high for the width-1/8
    # model: measured 0.115 validation accuracy after 3 epochs at 0.1, 0.38 at 0.02.
    summary = cli.fit_main(["fit", "--defense=rse", "--model=vgg16_tiny", "--epochs=3",
                            "--train_examples=10000", "--validation_size=1000",
                            "--learning_rate=0.02", "--batch_size=64", "--verbose=0",
                            f"--workdir={tmp_path}"])
    # 3 epochs x 141 steps; chance is 0.10.
    assert summary["validation_accuracy_ensemble"] > 0.3, summary
    assert summary["validation_accuracy_single_pass"] > 0.25, summary


@pytest.mark.parametrize(
    "extra, error, match",
    [
        (["--defense=magic"], Exception, r"defense"),
        (["--epochs=-1"], Exception, r"epochs"),
        (["--data_dir=/nonexistent"], ValueError, r"`data_dir`.*Received: data_dir='/nonexistent'"),
        (["--lr_decay_at=0.5,x,0.9"], ValueError, r"`--lr_decay_at`.*Received: lr_decay_at='0.5,x,0.9'"),
        (["--lr_decay_at=0.5,0.4"], ValueError,
         r"`--lr_decay_at`.*2 increasing.*'rse'.*Received: lr_decay_at=\[0.5, 0.4\]"),
        (["--lr_decay_at=0.5,0.75,0.9"], ValueError,  # three points: rat's, not rse's
         r"`--lr_decay_at`.*Received: lr_decay_at=\[0.5, 0.75, 0.9\]"),
        (["--learning_rate=0"], Exception, r"--learning_rate must be > 0"),
        (["--weight_decay=-0.001"], Exception, r"weight_decay"),
        (["--train_examples=-100"], Exception, r"train_examples"),
        (["--weight_decay_style=l2"], Exception, r"weight_decay_style"),
        (["--init_weights=/nonexistent.npz"], ValueError,
         r"`--init_weights`.*Received: init_weights='/nonexistent.npz'"),
        (["--init_weights=cifar10_vgg16_rsx"], ValueError,
         r"`--init_weights`.*did you mean 'cifar10_vgg16_rse'"),
        (["--init_weights=cifar10_vgg16"], ValueError,  # full VGG16 weights, tiny model
         r"`--init_weights`.*does not match.*Received: init_weights='cifar10_vgg16'"),
        (["--defense=distill", "--init_weights=cifar10_vgg16"], ValueError,
         r"`--init_weights`.*two-phase.*Received: init_weights='cifar10_vgg16'"),
        (["--defense=fgsm_retrain", "--eps=0.03"], ValueError,
         r"--eps is used only by --defense=at\|lerat\|rat.*U\(0.1, 0.3\).*eps=0.03"),
        (["--defense=rse", "--temperature=20"], ValueError,
         r"--temperature is used only by --defense=distill.*defense='rse'"),
        (["--defense=at", "--average_from_epoch=1"], ValueError,
         r"--average_from_epoch is for --defense=none\|rse.*defense='at'"),
        (["--defense=distill", "--average_from_epoch=1"], ValueError,  # two phases
         r"--average_from_epoch is for --defense=none\|rse.*defense='distill'"),
        (["--defense=rse", "--epochs=2", "--average_from_epoch=3"], ValueError,
         r"`--average_from_epoch`.*\[1, 2\].*Received: average_from_epoch=3"),
        (["--defense=rse", "--average_from_epoch=1", "--distribute=mirrored"], ValueError,
         r"--average_from_epoch runs on one replica.*distribute='mirrored'"),
    ],
)
def test_bad_flags_give_clear_errors(extra, error, match, tiny_data_dir, tmp_path):
    argv = _flags(tiny_data_dir, tmp_path) + extra
    with pytest.raises(error, match=match):
        cli.fit_main(argv)


def test_fit_with_weight_averaging_records_it_in_the_summary(tiny_data_dir, tmp_path):
    """The summary counts the epochs in the checkpoint's average; a resume whose checkpoint
    holds no average is refused before config.json changes."""
    summary = cli.fit_main(_flags(tiny_data_dir, tmp_path, "--defense=rse", "--epochs=2",
                                  "--average_from_epoch=2", "--train_examples=200"))
    assert summary["weight_average"] == {"first_epoch": 2, "epochs_averaged": 1,
                                         "batch_norm_recomputed_on": 100}
    plain_dir = tmp_path / "plain"
    plain = cli.fit_main(_flags(tiny_data_dir, plain_dir, "--defense=rse", "--epochs=1",
                                "--train_examples=200"))
    assert plain["weight_average"] is None
    config = (plain_dir / "config.json").read_text()
    with pytest.raises(ValueError, match=r"flag `--average_from_epoch`.*holds no weight "
                                         r"average after 1 epochs.*average_from_epoch=1"):
        cli.fit_main(_flags(tiny_data_dir, plain_dir, "--defense=rse", "--epochs=2",
                            "--average_from_epoch=1", "--train_examples=200"))
    assert (plain_dir / "config.json").read_text() == config
