"""Zoo presets as data (KerasHub style): what each named model is and how it was made.

A preset names ``<dataset>_<arch>_<defense>`` and records: the registered
builder and the defense (the network's noise and activation come from
`keras_rse.defenses.network_kwargs`, the same function ``train/fit.py`` uses),
the ensemble size of its `predict`, the exact command that trains it, its
deliberate deviations from the paper, and - once weights really trained here
are published - the weights file, its sha256 and where it comes from.

``weights`` is None for a preset that is a recipe only: `keras_rse.zoo.load`
then says so and prints ``command``. Nothing here is measured: accuracies live
in the model cards (``zoo/cards/<name>.json``), written by the evaluation
command only.
"""

_RSE_NOTES = (
    "Noise N(0, 0.2^2) on the [0, 1] pixels before the first conv and N(0, 0.1^2) before every "
    "other conv (RSE's sigma_init / sigma_inner for [0, 1] inputs; the official code put the "
    "first noise before the second conv of VGG16 with sigma 0.4).",
    "Batch norm with PyTorch's momentum 0.1 / eps 1e-5, in inference mode during attacks and "
    "ensembling.",
    "A 5,000-image validation split held out of the training set (the test set is never "
    "used in training); the weights are the last epoch's, no checkpoint selection.",
)
_RSE_ENSEMBLE_NOTE = ("predict averages 10 noise draws where the paper's experiments use a "
                      "50-ensemble (5x cheaper to predict and to judge attacks with); the cards "
                      "report the clean accuracy at 1, 10 and 50 draws, and model.ensemble_size "
                      "= 50 restores the paper's.")
_RAT_ENSEMBLE_NOTE = ("predict averages the softmax of 10 noise draws (RSE's self-ensemble) "
                      "where RAT predicts with one draw; the attacks of the cards are judged by "
                      "that 10-draw prediction, the cards' clean accuracy is at 1, 10 and 50 "
                      "draws, and model.ensemble_size = 1 restores RAT's prediction.")
_SHORT_RSE_SCHEDULE = ("30 epochs at peak lr 0.01 (x0.1 at 50 % and 75 %) instead of the RSE "
                       "code's 200 (blocks of 80 / 60 / 40 / 20 epochs at lr 0.1 / 0.01 / "
                       "0.001 / 0.0001).")
_RAT_NOTES = (
    "Noise N(0, 1) on the stem conv's output (RAT's first-layer activation); inputs scaled to "
    "[-1, 1] inside the model, so RAT's training PGD (1 step, eps 0.03, step 0.02 on [-1, 1]) "
    "is eps 0.015, step 0.01 in the [0, 1] pixel units of keras_rse; it starts at a random "
    "point of the eps ball, which the paper does not say (from x, one step of 0.02 never "
    "reaches the 0.03 bound).",
    "Schedule: RAT recipe (lr 0.1 -> 0.02 -> 0.004 -> 8e-5 after 15 %, 30 % and 40 % of the "
    "steps, i.e. the paper's 7,500 / 15,000 / 20,000 of 50,000 steps; momentum 0.9, weight "
    "decay 2e-3, batch 200), with a linear warm-up over the first 2 % of the steps.",
)


def _short_rat_schedule(length):
    """The deviation note of a shortened RAT run; ``length`` e.g. "4 epochs (900 steps"."""
    return (f"{length} of batch 200) instead of 200 epochs, with the recipe's decays (lr 0.1 "
            "-> 0.02 -> 0.004 -> 8e-5) moved to 50 %, 75 % and 90 % of the steps: at the "
            "paper's 15 / 30 / 40 % a short run would spend 60 % of its steps at lr 8e-5. "
            "Momentum 0.9, weight decay 2e-3, batch 200 and the 2 % warm-up as the recipe.")

_AT_INPUT_NOTE = ("Inputs standardised by CIFAR-10's per-channel mean and std (the WideResNet "
                  "builder's default) instead of the paper's [-1, 1]: an affine change of the "
                  "input that the first conv absorbs.")
_WRN16_2 = "WideResNet-16-2 (0.69 M parameters) instead of WideResNet-28-10 (36.5 M)"
_DECOUPLED_NOTE = ("Weight decay decoupled (--weight_decay_style=decoupled, Keras's SGD: w -= "
                   "lr * wd * w), about 10x weaker under momentum 0.9 than the papers' coupled "
                   "L2 (PyTorch's SGD adds wd * w to the gradient), which train/fit.py uses "
                   "by default since 2026-12-07.")


PRESETS = {
    "cifar10_vgg16_rse": {
        "description": "VGG16 with RSE noise layers, noisy SGD (Liu et al., 2018, Table 2 row "
                       "'RSE').",
        "dataset": "cifar10", "model": "vgg16", "defense": "rse", "builder_kwargs": {},
        "ensemble_size": 10, "paper": "RSE",
        "command": "python3 train/fit.py --defense=rse --model=vgg16 --dataset=cifar10 "
                   "--epochs=100 --mixed_precision --seed=0 --weight_decay_style=decoupled "
                   "--workdir=runs/cifar10_vgg16_rse",
        "deviations": _RSE_NOTES + (
            _RSE_ENSEMBLE_NOTE,
            _DECOUPLED_NOTE,
            "100 epochs at the recipe's peak lr 0.1 (2 % warm-up, x0.1 after epochs 50 and 75) "
            "instead of the RSE code's 200 (blocks of 80 / 60 / 40 / 20 epochs at lr 0.1 / "
            "0.01 / 0.001 / 0.0001): what a 2-core CPU trains in about 6 h. (The weights "
            "published before, 30 epochs at peak lr 0.01, reached 0.778 single pass / 0.816 "
            "ensemble of 10 on validation.)",
            "Trained with the mixed_bfloat16 policy; weights stored as float16 (noise-off "
            "accuracy on the 10,000 test images: 0.7784 from the float32 weights, 0.7785 from "
            "the float16 ones, 99.98 % identical predictions).",
            "Published weights: one run of the command above (with --checkpoint_every=25), "
            "resumed three times from its checkpoints; trained on the JPEG re-encoded "
            "CIFAR-10 copy of ../shared/data/cifar10 (45,000 train / 5,000 validation "
            "images). Validation accuracy at epoch 100: 0.806 single pass, 0.844 "
            "self-ensemble of 10 (the final epoch's weights, no checkpoint selection).",
        ),
        "weights": {"file": "cifar10_vgg16_rse.float16.npz",
                    "sha256": "35bc387b6cdab3ff3df81534272535b2eb4695d544dcbfeb1bc1d52bdb801f31",
                    "url": None},
    },
    "cifar10_vgg16": {
        "description": "Undefended VGG16 (the 'No defense' row of RSE Table 2), trained "
                       "without noise for 30 epochs at peak lr 0.01.",
        "dataset": "cifar10", "model": "vgg16", "defense": "none", "builder_kwargs": {},
        "ensemble_size": 1, "paper": "RSE",
        "command": "python3 train/fit.py --defense=none --model=vgg16 --dataset=cifar10 "
                   "--epochs=30 --learning_rate=0.01 --mixed_precision --seed=0 "
                   "--ensemble_size=1 --weight_decay_style=decoupled "
                   "--workdir=runs/cifar10_vgg16",
        "deviations": _RSE_NOTES[1:] + (
            "30 epochs at peak lr 0.01 (x0.1 at 50 % and 75 %), the schedule of the first "
            "cifar10_vgg16_rse weights (cifar10_vgg16_rse now has 100 epochs at lr 0.1).",
            _DECOUPLED_NOTE,
            "Trained with the mixed_bfloat16 policy; weights stored as float16 (accuracy on "
            "the 10,000 test images: 0.8716 from the float32 weights, 0.8714 from the float16 "
            "ones, 99.97 % identical predictions).",
            "Trained on the JPEG re-encoded CIFAR-10 copy of ../shared/data/cifar10 (45,000 "
            "train / 5,000 validation images); validation accuracy at epoch 30: 0.878 (the "
            "final epoch's weights, no checkpoint selection).",
        ),
        "weights": {"file": "cifar10_vgg16.float16.npz",
                    "sha256": "c6960ede5e55aa347074bc22fede693e5479c2c490ae6564ec9075d46613b521",
                    "url": None},
    },
    "cifar10_resnext29_rse": {
        "description": "ResNeXt-29 (8x64d) with RSE noise (RSE Fig. 5, CIFAR-10 + ResNeXt).",
        "dataset": "cifar10", "model": "resnext29_8x64d", "defense": "rse",
        "builder_kwargs": {}, "ensemble_size": 10, "paper": "RSE",
        "command": "python3 train/fit.py --defense=rse --model=resnext29_8x64d "
                   "--dataset=cifar10 --epochs=30 --learning_rate=0.01 "
                   "--mixed_precision --seed=0 --workdir=runs/cifar10_resnext29_rse",
        "deviations": ("sigma_init 0.1 / sigma_inner 0.1 (the builder's ResNeXt defaults).",
                       _RSE_ENSEMBLE_NOTE, _SHORT_RSE_SCHEDULE) + _RSE_NOTES[1:],
        "weights": None,
    },
    "stl10_modela_rse": {
        "description": "RSE 'Model A' on STL-10 (RSE Fig. 5, STL-10 + Model A).",
        "dataset": "stl10", "model": "model_a", "defense": "rse", "builder_kwargs": {},
        "ensemble_size": 10, "paper": "RSE",
        "command": "python3 train/fit.py --defense=rse --model=model_a --dataset=stl10 "
                   "--epochs=30 --learning_rate=0.01 --seed=0 --validation_size=500 "
                   "--workdir=runs/stl10_modela_rse",
        "deviations": ("Model A follows the pytorch-playground STL-10 layout "
                       "(32-64-128-128-256-256 convs, BN without affine); inputs scaled to "
                       "[-1, 1] inside the model.",
                       "500 of STL-10's 5,000 labelled training images are held out for "
                       "validation (the CIFAR-10 presets hold out 5,000 of 50,000).",
                       _RSE_ENSEMBLE_NOTE, _SHORT_RSE_SCHEDULE) + _RSE_NOTES[1:],
        "weights": None,
    },
    "cifar10_wrn28_10_rat": {
        "description": "WideResNet-28-10, Randomized Adversarial Training (Araujo et al., RAT "
                       "Table 2 row 'RAT').",
        "dataset": "cifar10", "model": "wide_resnet28_10", "defense": "rat",
        "builder_kwargs": {}, "ensemble_size": 10, "paper": "RAT",
        "command": "python3 train/fit.py --defense=rat --model=wide_resnet28_10 "
                   "--dataset=cifar10 --epochs=200 --seed=0 "
                   "--workdir=runs/cifar10_wrn28_10_rat",
        "deviations": _RAT_NOTES + (_RAT_ENSEMBLE_NOTE,
                                    "No dropout (the paper mentions dropout without a rate)."),
        "weights": None,
    },
    "cifar10_wrn16_2_rat": {
        "description": "WideResNet-16-2, Randomized Adversarial Training (RAT, Araujo et "
                       "al.): the RAT recipe, shortened, on the WideResNet that trains here "
                       "(2-core CPU) within a working session.",
        "dataset": "cifar10", "model": "wide_resnet16_2", "defense": "rat",
        "builder_kwargs": {}, "ensemble_size": 10, "paper": "RAT",
        "command": "python3 train/fit.py --defense=rat --model=wide_resnet16_2 "
                   "--dataset=cifar10 --epochs=4 --lr_decay_at=0.5,0.75,0.9 --seed=0 "
                   "--workdir=runs/cifar10_wrn16_2_rat --weight_decay_style=decoupled",
        "deviations": (_RAT_NOTES[0], _RAT_ENSEMBLE_NOTE) + (
            _WRN16_2 + ". Measured RAT train steps (batch 200, float32) on the 2-core "
            "AVX2 CPU it was "
            "trained on: WRN-16-2 4.0 s, WRN-16-4 11.2 s (42 min per epoch), so WRN-16-4 "
            "does not train in hours there.",
            _short_rat_schedule("4 epochs (900 steps"),
            _DECOUPLED_NOTE,
            "No dropout (the paper mentions dropout without a rate); float32 (this CPU has no "
            "native bfloat16); trained on the JPEG re-encoded CIFAR-10 copy of "
            "../shared/data/cifar10 (45,000 train / 5,000 validation images).",
            "Published weights: epoch 1 ran under --epochs=5 (warm-up 22 steps instead of 18; "
            "no decay point reached), then the run was resumed with --epochs=4 to fit the "
            "working session (epochs 2-4: 3,249 s). Validation accuracy at epoch 4: 0.642 "
            "single pass, 0.650 self-ensemble of 10 (the final epoch's weights, no checkpoint "
            "selection).",
            "Weights stored as float16 (noise-off accuracy on the 10,000 test images: 0.6370 "
            "from the float32 and from the float16 weights, 99.98 % identical predictions).",
        ),
        "weights": {"file": "cifar10_wrn16_2_rat.float16.npz",
                    "sha256": "142dd1c5e42e0b927433fe8b94532310952b1f295ccc223dd06b4634c6b81e66",
                    "url": None},
    },
    "cifar10_wrn16_2_lerat": {
        "description": "WideResNet-16-2, RAT with learned noise scales (LeRAT, Araujo et "
                       "al.): the cifar10_wrn16_2_rat run with the noise learned.",
        "dataset": "cifar10", "model": "wide_resnet16_2", "defense": "lerat",
        "builder_kwargs": {}, "ensemble_size": 10, "paper": "RAT",
        "command": "python3 train/fit.py --defense=lerat --model=wide_resnet16_2 "
                   "--dataset=cifar10 --epochs=4 --lr_decay_at=0.5,0.75,0.9 --seed=0 "
                   "--workdir=runs/cifar10_wrn16_2_lerat --weight_decay_style=decoupled",
        "deviations": (_RAT_NOTES[0], _RAT_ENSEMBLE_NOTE) + (
            "Learned noise: one scale per channel of the stem output, initialised at 1 and "
            "kept >= 0 (NonNeg constraint plus abs), and a learned per-channel offset "
            "(initialised at 0), both trained by the adversarial loss and, in this run, "
            "shrunk by the decoupled weight decay as well (x0.906 over the run's summed lr of "
            "49.3; the coupled default leaves learned noise out of the decay, as PNI).",
            _WRN16_2 + ", as cifar10_wrn16_2_rat.",
            _short_rat_schedule("4 epochs (900 steps"),
            _DECOUPLED_NOTE,
            "No dropout (the paper mentions dropout without a rate); float32; trained on the "
            "JPEG re-encoded CIFAR-10 copy of ../shared/data/cifar10 (45,000 train / 5,000 "
            "validation images).",
            "Published weights: one uninterrupted run of the command above (5,188 s on 2 AVX2 "
            "cores, partly beside test runs). Validation accuracy by epoch 0.458 / 0.498 / "
            "0.646 / 0.656; at epoch 4: 0.654 single pass, 0.656 self-ensemble of 10 (the "
            "final epoch's weights, no checkpoint selection). The learned noise scales went "
            "from 1 to a mean of 0.58 (0.10 to 0.85 over the 16 channels); the offsets stayed "
            "below 1e-5 (batch norm follows the noise and removes a constant shift).",
            "Weights stored as float16 (noise-off accuracy on the 10,000 test images: 0.6697 "
            "from the float32 and 0.6698 from the float16 weights, 99.97 % identical "
            "predictions).",
        ),
        "weights": {"file": "cifar10_wrn16_2_lerat.float16.npz",
                    "sha256": "afbd901dbef2917a44e5908ae8601011e18ba04f3ec1da4ba748e89db49a61ad",
                    "url": None},
    },
    "cifar10_wrn16_2_at": {
        "description": "WideResNet-16-2, Madry PGD adversarial training (the 'Adv. Training' "
                       "row of RAT Table 2) on the network of cifar10_wrn16_2_rat, without "
                       "noise.",
        "dataset": "cifar10", "model": "wide_resnet16_2", "defense": "at",
        "builder_kwargs": {}, "ensemble_size": 1, "paper": "RAT",
        "command": "python3 train/fit.py --defense=at --model=wide_resnet16_2 "
                   "--dataset=cifar10 --epochs=4 --lr_decay_at=0.5,0.75,0.9 --seed=0 "
                   "--ensemble_size=1 --weight_decay_style=decoupled "
                   "--workdir=runs/cifar10_wrn16_2_at",
        "deviations": (
            "PGD eps 8/255, 7 steps of 2/255 with a random start (Madry et al.), in [0, 1] "
            "pixel units.",
            _AT_INPUT_NOTE,
            _WRN16_2 + ", as cifar10_wrn16_2_rat.",
            _short_rat_schedule("4 epochs (900 steps"),
            _DECOUPLED_NOTE,
            "No dropout; float32; trained on the JPEG re-encoded CIFAR-10 copy of "
            "../shared/data/cifar10 (45,000 train / 5,000 validation images).",
            "Published weights: the command above, run from 2026-12-02 00:23 to 08:08 UTC on 2 "
            "AVX2 cores, resumed 4 times from its 25-step checkpoints (session stops), paused "
            "during test runs; 12.4-14.7 s per step of 200 when running alone (~3.3 h of "
            "compute). Validation accuracy (clean) by epoch 0.368 / 0.416 / 0.465 / 0.478 (the "
            "final epoch's weights, no checkpoint selection): 4 epochs of PGD training leave "
            "this network far below the paper's 200-epoch WRN-28-10.",
            "Weights stored as float16 (accuracy on the 10,000 test images: 0.4775 from the "
            "float32 and 0.4777 from the float16 weights, 99.88 % identical predictions).",
        ),
        "weights": {"file": "cifar10_wrn16_2_at.float16.npz",
                    "sha256": "710335257ac4d547f8600a4582b4950d4aae7a6106361261d9d3fcc6c682f45c",
                    "url": None},
    },
    "cifar10_wrn16_4_rat": {
        "description": "WideResNet-16-4, Randomized Adversarial Training (RAT, Araujo et "
                       "al.): the RAT recipe, shortened, on a WideResNet that trains in a "
                       "few hours on a CPU with native bfloat16 (AMX).",
        "dataset": "cifar10", "model": "wide_resnet16_4", "defense": "rat",
        "builder_kwargs": {}, "ensemble_size": 10, "paper": "RAT",
        "command": "python3 train/fit.py --defense=rat --model=wide_resnet16_4 "
                   "--dataset=cifar10 --epochs=10 --lr_decay_at=0.5,0.75,0.9 "
                   "--mixed_precision --seed=0 --workdir=runs/cifar10_wrn16_4_rat",
        "deviations": (_RAT_NOTES[0], _RAT_ENSEMBLE_NOTE) + (
            "WideResNet-16-4 (2.75 M parameters) instead of WideResNet-28-10 (36.5 M): the "
            "paper's network does not train on a 2-core CPU in hours.",
            _short_rat_schedule("10 epochs (2,250 steps"),
            "No dropout (the paper mentions dropout without a rate); mixed_bfloat16, which "
            "needs a CPU with AMX / AVX512-BF16 or a GPU: on a 2-core AVX2 CPU a step took "
            "about 150 s in bfloat16 (11.2 s in float32; drop --mixed_precision there).",
        ),
        "weights": None,
    },
    "cifar10_wrn28_10_lerat": {
        "description": "WideResNet-28-10, RAT with learned noise scales (LeRAT).",
        "dataset": "cifar10", "model": "wide_resnet28_10", "defense": "lerat",
        "builder_kwargs": {}, "ensemble_size": 10, "paper": "RAT",
        "command": "python3 train/fit.py --defense=lerat --model=wide_resnet28_10 "
                   "--dataset=cifar10 --epochs=200 --seed=0 "
                   "--workdir=runs/cifar10_wrn28_10_lerat",
        "deviations": _RAT_NOTES + (
            _RAT_ENSEMBLE_NOTE,
            "Learned noise: one scale per channel of the stem output, initialised at 1 and "
            "kept >= 0 (NonNeg constraint plus abs), and a learned per-channel offset "
            "(initialised at 0; LeRAT learns the scale only, and the batch norm after the "
            "noise removes a constant shift).",),
        "weights": None,
    },
    "cifar10_wrn28_10_at": {
        "description": "WideResNet-28-10, Madry PGD adversarial training (the 'Adv. Training' "
                       "row of RAT Table 2).",
        "dataset": "cifar10", "model": "wide_resnet28_10", "defense": "at",
        "builder_kwargs": {}, "ensemble_size": 1, "paper": "RAT",
        "command": "python3 train/fit.py --defense=at --model=wide_resnet28_10 "
                   "--dataset=cifar10 --epochs=200 --seed=0 --ensemble_size=1 "
                   "--workdir=runs/cifar10_wrn28_10_at",
        "deviations": ("PGD eps 8/255, 7 steps of 2/255 with a random start (Madry et al.).",
                       _AT_INPUT_NOTE, _RAT_NOTES[1],
                       "No dropout (the paper mentions dropout without a rate)."),
        "weights": None,
    },
}
