"""Model cards (RobustBench style): JSON written by the evaluation command, never by hand.

A card is an evaluation report of a preset's published weights plus the
weights' identity (file and sha256), so a card always refers to exactly one
file. ``zoo/README.md`` is generated from the cards (`readme_markdown`), and a
test keeps presets, cards and weights in step.
"""

import glob
import json
import os

from keras_rse._io import atomic_write_text
from keras_rse.zoo.presets import PRESETS

README_HEADER = (
    "# keras_rse zoo\n\n"
    "Generated from `zoo/cards/*.json` by `python3 train/evaluate.py --write_card` (do not edit "
    "by hand). Accuracies are measured on the CIFAR-10 / STL-10 test split with 95 % Wilson "
    "intervals; attacks know the noise (EOT) and the prediction is the model's self-ensemble. "
    "Every card lists the full attack settings, seeds, wall time and versions.\n")
OLD_CW_NOTE = ("Rows marked 'old C&W: overstated' were measured on a randomized model before C&W "
               "judged its result by new noise draws (2026-12-02); they overstate the accuracy "
               "under C&W.")


def card_from_report(name, report, weights_file, weights_sha256, evaluate_command):
    """Builds the card of preset ``name`` from its evaluation report.

    Args:
        name: The preset's name.
        report: One entry of `keras_rse.eval.evaluate`'s reports, with its diagnostics.
        weights_file: File name of the evaluated, published weights.
        weights_sha256: Their sha256.
        evaluate_command: The command line that produced ``report``.

    Returns:
        The card (a JSON-able dict): the report plus the preset's description, training
        command, deviations and the weights' identity.
    """
    if name not in PRESETS:
        raise ValueError(f"Invalid value for argument `name`. Expected a zoo preset. "
                         f"Received: name={name!r}")
    if not report.get("diagnostics"):
        raise ValueError(f"Invalid value for argument `report`: a card needs the report's "
                         f"diagnostics (noise on, gradients, attack strength); this report has "
                         f"none (evaluated with run_diagnostics=False / --nodiagnostics?). "
                         f"Received: report with diagnostics={report.get('diagnostics')!r}")
    preset = PRESETS[name]
    # The report's weights_file is a path on the evaluating machine; the card names the
    # file by its zoo name and sha256 instead.
    report = {key: value for key, value in report.items() if key != "weights_file"}
    return dict(report, preset=name, description=preset["description"],
                training_command=preset["command"], deviations=list(preset["deviations"]),
                weights={"file": weights_file, "sha256": weights_sha256},
                evaluate_command=evaluate_command)


def cards_dir(zoo_dir):
    return os.path.join(zoo_dir, "cards")


FRONT_DOOR_MARKERS = ("<!-- zoo-cards:begin (generated from zoo/cards) -->",
                      "<!-- zoo-cards:end -->")


def write_card(card, zoo_dir):
    """Writes ``zoo_dir/cards/<preset>.json`` atomically and regenerates the READMEs.

    ``zoo_dir/README.md`` is rewritten; the project README beside ``zoo_dir``
    gets its marked cards block replaced, if it has one.
    """
    os.makedirs(cards_dir(zoo_dir), exist_ok=True)
    path = os.path.join(cards_dir(zoo_dir), f"{card['preset']}.json")
    atomic_write_text(path, json.dumps(card, indent=2) + "\n")
    write_readme(zoo_dir)
    update_front_door(os.path.join(os.path.dirname(os.path.abspath(zoo_dir)), "README.md"),
                      load_cards(zoo_dir))
    return path


def front_door_table(cards):
    """The project README's summary of the cards: one row per measured number."""
    if not cards:
        return "No model card yet: no preset has published, evaluated weights.\n"
    lines = ["| preset | measured | images | accuracy [95 % CI] |", "|---|---|---|---|"]
    for name, card in sorted(cards.items()):
        single = card["clean"]["single_pass"]
        if not card.get("randomized", True):  # no noise: every pass is the same
            lines.append(f"| {name} | clean (deterministic) | {single['n']} | "
                         f"{_cell(single)} |")
        else:
            ensemble = card["clean"]["ensemble"]
            size = str(card.get("ensemble_size", max(ensemble, key=int)))
            if size in ensemble:
                lines.append(f"| {name} | clean, self-ensemble of {size} | "
                             f"{ensemble[size]['n']} | {_cell(ensemble[size])} |")
            lines.append(f"| {name} | clean, one noisy pass | {single['n']} | "
                         f"{_cell(single)} |")
        for attack in card["attacks"]:
            lines.append(f"| {name} | {_attack_label(card, attack)}, EOT "
                         f"{attack['settings']['eot_samples']} "
                         f"| {attack['robust']['n']} | {_cell(attack['robust'])} |")
    return "\n".join(lines) + "\n"


def update_front_door(readme_path, cards):
    """Replaces the marked block of ``readme_path`` with `front_door_table`; no markers: no-op.

    Returns:
        True when the file was rewritten.
    """
    if not os.path.isfile(readme_path):
        return False
    with open(readme_path) as f:
        text = f.read()
    begin, end = FRONT_DOOR_MARKERS
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(readme_path, f"{head}{begin}\n{front_door_table(cards)}{end}{tail}")
    return True


def write_readme(zoo_dir):
    """Regenerates ``zoo_dir/README.md`` from the presets and the cards."""
    path = os.path.join(zoo_dir, "README.md")
    atomic_write_text(path, readme_markdown(load_cards(zoo_dir)))
    return path


def load_cards(zoo_dir):
    """``{preset: card}`` for every card under ``zoo_dir/cards``."""
    cards = {}
    for path in sorted(glob.glob(os.path.join(cards_dir(zoo_dir), "*.json"))):
        with open(path) as f:
            card = json.load(f)
        cards[card["preset"]] = card
    return cards


def _cell(entry):
    if entry is None:
        return "-"
    low, high = entry["ci95"]
    return f"{entry['accuracy']:.1%} [{low:.1%}, {high:.1%}]"


def _attack_label(card, attack):
    """The attack's name, flagged when it is a C&W row of a randomized model measured
    by an earlier C&W (before 2026-12-02 without a ``selection``, or with an earlier rule):
    those rows overstate accuracy."""
    from keras_rse.eval._run import CW_SELECTION  # here: eval imports more than cards need

    settings = attack["settings"]
    if card.get("randomized", True) and settings.get("attack") == "cw" and (
            settings.get("selection") != CW_SELECTION):
        return f"{attack['name']} (old C&W: overstated)"
    return attack["name"]


def readme_markdown(cards):
    """The zoo README: a clean-accuracy table and an under-attack table, from ``cards``."""
    lines = [README_HEADER, "## Presets", "",
             "| preset | model | defense | ensemble | weights | command that trains it |",
             "|---|---|---|---|---|---|"]
    for name, preset in sorted(PRESETS.items()):
        published = (f"`{preset['weights']['file']}`" if preset["weights"] is not None
                     else "not published yet")
        lines.append(f"| {name} | {preset['model']} | {preset['defense']} | "
                     f"{preset['ensemble_size']} | {published} | `{preset['command']}` |")
    if not cards:
        lines += ["", "No model card yet: no preset has published, evaluated weights.", ""]
        return "\n".join(lines)
    sources = sorted({card.get("test_data", {}).get("description", "not recorded")
                      for card in cards.values()})
    lines += ["", "Measured on: " + "; ".join(sources) + ".", "", "## Clean accuracy", "",
             "| preset | weights sha256 | images | single pass | ensemble n=1 | n=10 | n=50 |",
             "|---|---|---|---|---|---|---|"]
    for name, card in sorted(cards.items()):
        ensemble = card["clean"]["ensemble"]
        lines.append(
            f"| {name} | `{card['weights']['sha256'][:12]}` | {card['n_clean']} | "
            f"{_cell(card['clean']['single_pass'])} | {_cell(ensemble.get('1'))} | "
            f"{_cell(ensemble.get('10'))} | {_cell(ensemble.get('50'))} |")
    lines += ["", "## Accuracy under attack", "",
              "| preset | attack | EOT | images | accuracy | median L2 of successes |",
              "|---|---|---|---|---|---|"]
    own_verdict = False  # a row whose median uses the attack's own verdict (older entries)
    old_cw = False  # a C&W row of a randomized model measured by an earlier C&W
    for name, card in sorted(cards.items()):
        for attack in card["attacks"]:
            l2 = attack["median_l2_of_successes"]
            mark = "" if "successes_judged_by" in attack else " †"
            own_verdict |= bool(mark) and l2 is not None
            label = _attack_label(card, attack)
            old_cw |= label != attack["name"]
            lines.append(
                f"| {name} | {label} | {attack['settings']['eot_samples']} "
                f"({attack['settings']['estimator']}) | {attack['robust']['n']} | "
                f"{_cell(attack['robust'])} | {'-' if l2 is None else f'{l2:.3f}{mark}'} |")
    if own_verdict:
        lines += ["", "† measured before 2026-12-02: the median over the examples the attack's "
                  "own verdict (its EOT draws) called fooled; later cards count the examples the "
                  "model classified correctly and misclassifies after the attack."]
    if old_cw:
        lines += ["", OLD_CW_NOTE]
    failed = [f"{name}: {d['name']}" for name, card in sorted(cards.items())
              for d in card["diagnostics"] if d["status"] == "fail"]
    lines += ["", "Diagnostics failed: " + (", ".join(failed) if failed else "none") + "."]
    not_run = [name for name, card in sorted(cards.items()) if not card["diagnostics"]]
    if not_run:  # card_from_report refuses these; an older or hand-made card may lack them
        lines.append("Diagnostics not run: " + ", ".join(not_run) + ".")
    lines.append("")
    return "\n".join(lines)
