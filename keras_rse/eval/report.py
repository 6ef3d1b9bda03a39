"""Reports: one JSON, one Markdown page and PNG plots per evaluation run.

A run evaluates one model, or a model and a baseline side by side (RSE Table
2 form). ``reports`` is the list of per-model report dicts returned by
`keras_rse.eval.evaluate`, each completed with ``model`` (name) and
``source`` (preset or file) by the caller.
"""

import importlib.util
import json
import os
from typing import Any

from keras_rse._io import atomic_save, atomic_write_text


def _pct(entry):
    low, high = entry["ci95"]
    return f"{entry['accuracy']:.1%} [{low:.1%}, {high:.1%}]"


def _settings_text(settings):
    skip = {"name", "attack"}
    if settings.get("attack") == "worst_of":  # the parts, each with its own settings
        policy = settings.get("attack_policy")
        return "worst case per example of: " + "; ".join(
            f"{part['name']} ({_settings_text(part)})" for part in settings["attacks"]) + (
            f"; attack_policy={policy}" if policy else "")
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in settings.items() if k not in skip and v is not None)


def _time_text(report):
    """This run's wall time, and the time of every part when parts were read back."""
    text = f"wall time {report['wall_seconds']} s"
    if report.get("resumed_parts") and "compute_seconds" in report:
        text += (f" (this run; all parts, those read back included, took "
                 f"{report['compute_seconds']} s")
        if report.get("untimed_parts"):
            text += f", not counting untimed parts: {', '.join(report['untimed_parts'])}"
        text += ")"
    return text


def _seed_text(report):
    """What the seed drove; reports written before the field existed do not say."""
    if report.get("noise_seeding"):
        return f"attack starts; noise {report['noise_seeding']}"
    return "attack starts; how the noise was seeded is not recorded"


def _same_attack(attack, report):
    """The entry of ``report``'s attacks on the report row of ``attack``, or None.

    Rows match by suite and name: one name can be in two suites with other settings
    (PGD-10 at 8/255 is in quick with EOT 10 and in rat_table2 with EOT 50). A
    deterministic model runs such a shared attack once, under its first suite (its EOT
    settings change nothing), so for it the name alone is the fallback; a randomized
    model's entry of another suite ran other settings and is not shown in this row.
    """
    entries = report["attacks"]
    for entry in entries:
        if entry["name"] == attack["name"] and entry.get("suite") == attack.get("suite"):
            return entry
    if report.get("randomized", True):
        return None
    return next((entry for entry in entries if entry["name"] == attack["name"]), None)


def _clean_on_attacked_images(report):
    """Clean accuracy of the model's prediction on the images its attacks ran on, or None.

    The comparable baseline of the robust accuracies (same images, same ensemble size);
    the clean table's numbers are on ``n_clean`` images and other ensemble sizes.
    """
    return next((a["clean_accuracy_same_examples"] for a in report["attacks"]
                 if a.get("clean_accuracy_same_examples") is not None), None)


def _attack_rows(reports):
    """The attack table's rows: the first model's attacks, then those only later ones ran
    (matched by suite and name: one name can be two rows with other settings)."""
    rows = list(reports[0]["attacks"])
    for r in reports[1:]:
        rows += [attack for attack in r["attacks"] if not any(
            row["name"] == attack["name"] and row.get("suite") == attack.get("suite")
            for row in rows)]
    return rows


def _attack_labels(attacks):
    """Row labels: the attack's name, with its suite where two rows share the name."""
    names = [a["name"] for a in attacks]
    return [f"{a['name']} ({a.get('suite')})" if names.count(a["name"]) > 1 else a["name"]
            for a in attacks]


def to_markdown(reports: list[dict[str, Any]]) -> str:
    """The Markdown page of a run (models side by side).

    Args:
        reports: Per-model report dicts (see the module docstring).

    Returns:
        The page: header, warnings, clean accuracy, attacks, sweeps, diagnostics.
    """
    names = [r["model"] for r in reports]
    lines = [f"# Evaluation: {' vs '.join(names)}", ""]
    lines += _header_lines(reports) + _clean_lines(reports) + _attack_lines(reports)
    lines += _sweep_lines(reports) + _diagnostic_lines(reports)
    return "\n".join(lines) + "\n"


def _header_lines(reports):
    """One bullet per model (data, sizes, seed, randomized, time, versions, parts read
    back), then any warnings."""
    lines = []
    for r in reports:
        data = r.get("test_data", {}).get("description", f"{r.get('dataset')} test split")
        attacked = (f"attacks on the first {r['n_examples']}"
                    if r.get("attacks") or r.get("sweeps") else "no attacks")
        lines.append(f"- **{r['model']}** ({r.get('source', '?')}): {data}, clean on "
                     f"{r['n_clean']} images, {attacked}, seed "
                     f"{r['seed']} ({_seed_text(r)}), "
                     f"randomized: {r['randomized']}, "
                     f"{_time_text(r)}, versions {r.get('versions', {})}")
        if r.get("resumed_parts"):
            lines.append(f"  - read back from an earlier run that computed these parts "
                         f"with the same weights, images, settings and seed: "
                         f"{', '.join(r['resumed_parts'])}; each attack keeps its own time")
    warnings = [f"{r['model']}: {w}" for r in reports for w in r["warnings"]]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- **{w}**" for w in warnings]
    return lines


def _clean_lines(reports):
    """The clean-accuracy table: single pass and each ensemble size, models as columns."""
    names = [r["model"] for r in reports]
    lines = ["", "## Clean accuracy (95 % Wilson interval)", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
             "| single pass (one noise draw if randomized) | " + " | ".join(
                 _pct(r["clean"]["single_pass"]) for r in reports) + " |"]
    for size in reports[0]["clean"]["ensemble"]:
        lines.append(f"| ensemble n={size} | " + " | ".join(
            _pct(r["clean"]["ensemble"][size]) if size in r["clean"]["ensemble"] else "-"
            for r in reports) + " |")
    return lines


def _attack_lines(reports):
    """The robust-accuracy table and, per attack, its median L2 and time ([] without attacks)."""
    if not any(r["attacks"] for r in reports):
        return []
    names = [r["model"] for r in reports]
    lines = ["", "## Accuracy under attack (prediction = the model's self-ensemble)", "",
             "| attack | settings | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    clean = [_clean_on_attacked_images(r) for r in reports]
    if any(value is not None for value in clean):
        lines.append("| clean, no attack | the attacked images | " + " | ".join(
            "-" if value is None else f"{value:.1%}" for value in clean) + " |")
    rows = _attack_rows(reports)
    for attack, label in zip(rows, _attack_labels(rows)):
        cells = []
        for r in reports:
            entry = _same_attack(attack, r)
            cells.append("-" if entry is None else _pct(entry["robust"]))
        lines.append(f"| {label} | {_settings_text(attack['settings'])} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Median L2 of successful adversarials (examples the model classified "
              "correctly and misclassifies after the attack) / attack time:", ""]
    for r in reports:
        for a, label in zip(r["attacks"], _attack_labels(r["attacks"])):
            l2 = a["median_l2_of_successes"]
            rate = ("fooled {:.1%} of those" if "successes_judged_by" in a else
                    "success rate {:.1%} (older entry: median and rate by the attack's "
                    "own verdict)")
            lines.append(f"- {r['model']} / {label}: median L2 "
                         f"{'-' if l2 is None else f'{l2:.3f}'}, "
                         f"{rate.format(a['attack_success_rate'])}, {a['wall_seconds']} s")
    return lines


def _sweep_lines(reports):
    """One table per sweep of each model."""
    lines = []
    for r in reports:
        for sweep, data in r["sweeps"].items():
            lines += ["", f"## Sweep `{sweep}` — {r['model']} (n = {data['n']})", "",
                      f"| {data['x_label']} | accuracy |", "|---|---|"]
            lines += [f"| {x:.4g} | {acc:.1%} |" for x, acc in zip(data["x"], data["accuracy"])]
    return lines


def _diagnostic_lines(reports):
    """One table of sanity checks per model that ran them."""
    lines = []
    for r in reports:
        if r["diagnostics"]:
            lines += ["", f"## Diagnostics — {r['model']}", "", "| check | status | detail |",
                      "|---|---|---|"]
            lines += [f"| {d['name']} | {d['status'].upper()} | {d['detail']} |"
                      for d in r["diagnostics"]]
    return lines


def write_plots(reports, output_dir):
    """One PNG per sweep (all models on the same axes); [] without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return []
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    paths = []
    if any(r["attacks"] for r in reports):
        paths.append(_plot_attacks(plt, reports, output_dir))
    sweeps = {s for r in reports for s in r["sweeps"]}
    for sweep in sorted(sweeps):
        figure, axes = plt.subplots(figsize=(5, 3.5))
        for r in reports:
            if sweep in r["sweeps"]:
                data = r["sweeps"][sweep]
                axes.plot(data["x"], data["accuracy"], marker="o", label=r["model"])
                axes.set_xlabel(data["x_label"])
        axes.set_ylabel("accuracy")
        axes.set_ylim(0, 1)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = os.path.join(output_dir, f"sweep_{sweep}.png")
        atomic_save(lambda tmp: figure.savefig(tmp, dpi=120), path)
        plt.close(figure)
        paths.append(path)
    return paths


def _plot_attacks(plt, reports, output_dir):
    """Grouped bars: clean accuracy and accuracy under each attack, per model, on the
    attacked images (older reports: the clean table's largest ensemble)."""
    rows = _attack_rows(reports)
    labels = ["clean"] + _attack_labels(rows)
    width = 0.8 / len(reports)
    figure, axes = plt.subplots(figsize=(max(5, 1.2 * len(labels)), 3.5))
    for i, r in enumerate(reports):
        clean = _clean_on_attacked_images(r)
        if clean is None:
            ensemble = r["clean"]["ensemble"]
            clean = (ensemble[max(ensemble, key=int)]["accuracy"] if ensemble
                     else r["clean"]["single_pass"]["accuracy"])
        entries = [_same_attack(attack, r) for attack in rows]
        # No bar where a model did not run the attack (a 0 would read as "fully broken").
        values = [clean] + [float("nan") if e is None else e["robust"]["accuracy"]
                            for e in entries]
        axes.bar([j + i * width for j in range(len(labels))], values, width, label=r["model"])
    axes.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))])
    axes.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path = os.path.join(output_dir, "attacks.png")
    atomic_save(lambda tmp: figure.savefig(tmp, dpi=120), path)
    plt.close(figure)
    return path


def write_report(reports: list[dict[str, Any]], output_dir: str) -> list[str]:
    """Writes ``report.json``, ``report.md`` and the sweep PNGs into ``output_dir``.

    Returns:
        The list of written paths.
    """
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, "report.json")
    markdown_path = os.path.join(output_dir, "report.md")
    plots = write_plots(reports, output_dir)
    markdown = to_markdown(reports)
    if not plots and any(r["sweeps"] or r["attacks"] for r in reports):
        markdown += ("\n(No plots: install matplotlib: `pip install -e '.[plots]'` in a clone, "
                     "or `pip install matplotlib`.)\n")
    atomic_write_text(json_path, json.dumps({"reports": reports}, indent=2))
    atomic_write_text(markdown_path, markdown)
    return [json_path, markdown_path] + plots
