"""The absl flags of the three scripts, the run-recording helpers they share.

absl keeps one global flag set, so every flag is defined here once; each
flag's help says which script reads it (``fit``, ``evaluate``, ``export``).
"""

from absl import flags

from keras_rse.defenses import DEFENSES
from keras_rse.training import RECIPES

FLAGS = flags.FLAGS
flags.DEFINE_enum("defense", "rse", sorted(DEFENSES), "Defense (training algorithm).")
flags.DEFINE_string("model", None, "fit: registered model name; default per defense "
                    "(vgg16 for rse/none/fgsm_retrain/distill/brelu, wide_resnet16_4 for "
                    "at/rat/lerat). evaluate/export: a zoo preset name or a .keras file.")
flags.DEFINE_enum("dataset", None, ["cifar10", "stl10"], "Dataset; default cifar10 (evaluate: "
                  "the preset's).")
flags.DEFINE_string("data_dir", None, "Directory with <dataset>_train.npz / _test.npz; "
                    "default $KERAS_RSE_DATA_DIR, else tensorflow-datasets.")
flags.DEFINE_integer("epochs", 1, "Training epochs (per phase for two-phase defenses).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", None, "Global batch size; fit: default from the recipe; "
                     "evaluate: attack batch, default 128, also the unit a killed evaluation "
                     "keeps.",
                     lower_bound=1)
flags.DEFINE_enum("recipe", None, sorted(RECIPES), "Optimiser recipe; default "
                  "rat for at/rat/lerat, else rse (rse_code: the RSE code's 200-epoch "
                  "blocks, x0.1 at 40 / 70 / 90 %).")
flags.DEFINE_float("learning_rate", None, "Initial learning rate (> 0); default from the "
                  "recipe.")
flags.register_validator("learning_rate", lambda value: value is None or value > 0,
                         message="--learning_rate must be > 0")
flags.DEFINE_float("weight_decay", None, "Weight decay; default from the recipe.",
                   lower_bound=0.0)
flags.DEFINE_enum("weight_decay_style", "coupled", ["coupled", "decoupled"],
                  "fit: 'coupled' adds weight_decay * w to the gradient before the momentum "
                  "(the papers' PyTorch SGD); 'decoupled' is Keras's SGD (w -= lr * "
                  "weight_decay * w, ~10x weaker under momentum 0.9), which every run before "
                  "2026-12-07 used (the published weights among them).")
flags.DEFINE_list("lr_decay_at", None, "Learning-rate decay points as fractions of all steps "
                  "(three for rat, e.g. 0.5,0.75,0.9; two for rse, e.g. 0.5,0.75); default "
                  "from the recipe.")
flags.DEFINE_float("init_noise", None, "Noise before the first conv (RAT: on its output).")
flags.DEFINE_float("inner_noise", None, "Noise before the other convs.")
flags.DEFINE_float("eps", None, "Adversarial budget in [0, 1] pixel units (at, rat, lerat).")
flags.DEFINE_float("attack_step_size", None, "PGD step size for adversarial training; "
                  "default the defense's (at: 2/255 whatever --eps is; rat/lerat: RAT's).",
                  lower_bound=0.0)
flags.DEFINE_integer("attack_steps", None, "PGD steps for adversarial training.",
                     lower_bound=1)
flags.DEFINE_float("temperature", 40.0, "Distillation temperature.")
flags.DEFINE_integer("ensemble_size", None, "Draws averaged by predict; default 10 (evaluate: "
                     "the preset's).", lower_bound=1)
flags.DEFINE_integer("validation_size", 5000, "Training images held out for validation.",
                     lower_bound=1)
flags.DEFINE_integer("train_examples", None, "Use only the first N training images.",
                     lower_bound=1)
flags.DEFINE_boolean("augment", True, "Random crop (4-pixel padding) and flip.")
flags.DEFINE_integer("seed", 0, "Seed of weights, noise, data order and attacks.")
flags.DEFINE_string("workdir", None, "Output directory; the same workdir resumes a run. "
                    "Default runs/<dataset>_<model>_<defense>.")
flags.DEFINE_enum("distribute", "none", ["none", "mirrored", "multiworker"],
                  "tf.distribute strategy.")
flags.DEFINE_boolean("mixed_precision", False, "Train with the mixed_bfloat16 policy (fast "
                     "on GPUs and AMX / AVX512-BF16 CPUs, ~10x slower on CPUs without them: "
                     "a warning says so).")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (to run "
                     "--distribute=mirrored without accelerators); 0 leaves it whole.",
                     lower_bound=0)
flags.DEFINE_integer("verbose", 1, "Keras progress output: 0 silent, 1 bar, 2 one line/epoch.")
flags.DEFINE_string("init_weights", None, "fit: start from these weights instead of a random "
                    "initialisation (continued training, fine-tuning): a zoo preset with "
                    "published weights (sha256 verified), a .npz in the zoo format, or a "
                    ".weights.h5 written by fit. A checkpoint in --workdir (resume) takes "
                    "precedence.")
flags.DEFINE_integer("average_from_epoch", None, "fit: stochastic weight averaging (Izmailov "
                     "et al., 2018): the model is the mean of the weights at the ends of epochs "
                     "N..--epochs (1-based), its batch-norm statistics recomputed on the "
                     "training split; rse and none only (the others train on perturbed "
                     "images), one replica only (--distribute=none).", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 100, "fit: also checkpoint every N steps within an "
                     "epoch, so a killed run loses at most N steps (0: at epoch ends only).",
                     lower_bound=0)

# Flags recorded in a training run's config.json (the evaluation flags follow).
FIT_CONFIG_FLAGS = frozenset(flag.name for flag in FLAGS.get_flags_for_module(__name__))

flags.DEFINE_list("suite", ["quick"], "evaluate: suites to run (quick, rse_table2, "
                  "rat_table2, apgd_rand); empty (--suite= --nodiagnostics, no --sweeps): "
                  "clean accuracy only, e.g. of the whole test split with --n_clean=10000.")
flags.DEFINE_list("sweeps", [], "evaluate: sweeps to plot (eps, c, eot, ensemble).")
flags.DEFINE_integer("n_examples", 100, "evaluate: the first N test images are attacked.",
                     lower_bound=1)
flags.DEFINE_integer("n_clean", 1000, "evaluate: the first N test images give clean accuracy.",
                     lower_bound=1)
flags.DEFINE_list("ensemble_sizes", ["1", "10", "50"], "evaluate: ensemble sizes for clean "
                  "accuracy.")
flags.DEFINE_integer("eot_samples", None, "evaluate: EOT draws per attack step; default the "
                     "suite's (10; rat_table2 50; apgd_rand 20).", lower_bound=1)
flags.DEFINE_integer("cw_steps", None, "evaluate: override of the C&W iterations.",
                     lower_bound=1)
flags.DEFINE_boolean("force_no_eot", False, "evaluate: allow --eot_samples=1 on a randomized "
                     "model (the report says so; no card is written).")
flags.DEFINE_string("baseline", None, "evaluate: a second model (preset or .keras) evaluated "
                    "side by side, e.g. cifar10_vgg16.")
flags.DEFINE_string("transfer_from", None, "evaluate: surrogate of the transfer diagnostic "
                    "(preset or .keras); default the model with its noise off (also for the "
                    "--model / --baseline that is the surrogate itself).")
flags.DEFINE_string("weights", "default", "evaluate: 'default' (the preset's verified file) "
                    "or a weights file (.npz / .weights.h5) of the preset's architecture, e.g. "
                    "a retrained candidate (no card is written from it).")
flags.DEFINE_string("output_dir", None, "evaluate: report directory; default "
                    "reports/<preset>, or reports/<run folder> for <run folder>/model.keras.")
flags.DEFINE_boolean("write_card", False, "evaluate: write zoo/cards/<preset>.json and "
                     "regenerate zoo/README.md (published weights, EOT on, diagnostics run).")
flags.DEFINE_string("zoo_dir", None, "evaluate/export: the zoo folder; default the source "
                    "checkout's zoo/.")
flags.DEFINE_boolean("diagnostics", True, "evaluate: run the sanity checks (without them "
                     "the report warns and no card can be written).")
flags.DEFINE_enum("attack_policy", None, ["mixed_bfloat16"],
                  "evaluate: FGSM/PGD/APGD follow the gradients of a copy computing in this "
                  "precision (bfloat16 is much cheaper on AMX CPUs); accuracies are still "
                  "judged on the float32 model, and C&W always attacks the float32 model "
                  "(it lost strength in bfloat16). Default: attack the model as loaded.")
flags.DEFINE_boolean("resume", True, "evaluate: keep finished parts and attack batches in "
                     "<output_dir>/.partial and read them back when the same evaluation "
                     "runs again (off under "
                     "--distribute=multiworker: workers may not share a disk).")
flags.DEFINE_integer("n_diagnostic", 64, "evaluate: images used by the sanity checks.",
                     lower_bound=1)
flags.DEFINE_string("source", None, "export: the trained .keras or .weights.h5 file.")

RAT_DEFENSES = {"at", "rat", "lerat"}


def parse(argv: list[str]) -> None:
    """Parses ``argv`` (``argv[0]`` is the program name), forgetting earlier values."""
    FLAGS.unparse_flags()
    FLAGS(list(argv))


def refuse_arguments(argv: list[str]) -> None:
    """An `absl.app.run` target takes flags only: stray words are an error."""
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")


def versions() -> dict[str, str]:
    """The versions recorded with every summary and report."""
    import keras
    import tensorflow as tf

    import keras_rse

    return {"keras_rse": keras_rse.__version__, "keras": keras.__version__,
            "tensorflow": tf.__version__}
