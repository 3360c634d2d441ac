"""`vitbench report`: tables (Markdown, CSV, LaTeX) and plots (PNG, SVG) from any mix of results.

Inputs are recognised by what they hold: a sweep folder (`provenance.json` from `vitbench
sweep`), a pytest-benchmark JSON (`--benchmark-json`), a training run folder or a study
folder. The paper's model table is always built: published numbers beside our counts.
Everything lands in one folder with an `index.md` that links each table and plot and says
where its numbers came from.
"""
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.names import path_tag
from bench.outputs import OutputFolder, folder_lock, read_back
from bench.provenance import provenance
from bench.report import html, plots, study, tables
from bench.report.markup import latex_table, md, md_lines, md_table
from bench.report.style import save_figure
from models.atomic import atomic_write_text
from models.errors import ResultsError

REPORT_TITLE = "# vitbench report"
INDEX, PAGE = "index.md", "index.html"


def report_files(out):
    """What a report of ours wrote: its index and every file the index links."""
    text = (Path(out) / INDEX).read_text()
    return {INDEX, PAGE, *re.findall(r"\]\(([^)/]+)\)", text)}


REPORT_FOLDER = OutputFolder(kind="report", marker=INDEX, holds="a report",
                             is_marked=lambda index: index.read_text().startswith(REPORT_TITLE), listed=report_files)


@dataclass
class Inputs:
    sweeps: list = field(default_factory=list)      # (path, tidy table, provenance)
    benchmarks: list = field(default_factory=list)  # (path, pytest-benchmark JSON)
    runs: list = field(default_factory=list)        # (path, config, summary or None, metrics table)
    studies: list = field(default_factory=list)     # (path, results table, study.json)

    def sources(self):
        return [path for path, *_ in self.sweeps + self.benchmarks + self.runs + self.studies]


def print_warning(message):
    print(message, file=sys.stderr)


def load_run(path):
    rewrite = f"`vitbench train --resume --out {path}` writes it again from the run's checkpoint"
    config = read_back(path / "config.json", "the run's settings are lost: train it again with --overwrite")
    summary = read_back(path / "summary.json", rewrite) if (path / "summary.json").is_file() else None
    metrics = pd.DataFrame(read_back(path / "metrics.jsonl", rewrite, kind="jsonl"))
    if metrics.empty:
        raise ResultsError(f"{path} has no finished epoch yet; train it first")
    return path, config, summary, metrics


def load_sweep(path, inputs):
    prov = read_back(path / "provenance.json", f"measure the sweep again: `vitbench sweep --overwrite --out {path}` "
                     "with its flags")
    if prov.get("tool") != "vitbench sweep":
        return False
    if not (path / "sweep.csv").is_file():
        raise ResultsError(f"{path} is an unfinished sweep; finish it with `vitbench sweep --resume --out {path}`")
    table = read_back(path / "sweep.csv", f"`vitbench sweep --resume --out {path}` writes it again", kind="csv")
    inputs.sweeps.append((path, table, prov))
    return True


def load_study(path, inputs):
    if not (path / "results.csv").is_file():
        raise ResultsError(f"{path} is a study without results.csv; run `vitbench study --report-only` on it")
    results = read_back(path / "results.csv", f"`vitbench study --out {path} --report-only` writes it again",
                        kind="csv")
    record = read_back(path / "study.json", "the study's record is lost: run the study again into a new --out")
    inputs.studies.append((path, results, record))
    return True


def load_benchmarks(path, inputs):
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path} is not valid JSON ({e}); regenerate it") from None
    if not (isinstance(data, dict) and "benchmarks" in data and "machine_info" in data):
        return False
    inputs.benchmarks.append((path, data))
    return True


def load_one(path, inputs):
    """Add `path` to `inputs` by what it holds; False when it is no result vitbench knows."""
    if path.is_dir() and (path / "provenance.json").is_file() and load_sweep(path, inputs):
        return True
    if path.is_dir() and (path / "study.json").is_file():
        return load_study(path, inputs)
    if path.is_dir() and (path / "config.json").is_file() and (path / "metrics.jsonl").is_file():
        inputs.runs.append(load_run(path))
        return True
    return path.is_file() and path.suffix == ".json" and load_benchmarks(path, inputs)


def load_collection(folder, inputs, warn):
    """Add every result inside `folder` (e.g. results/), at any depth; False when there is none.
    Files and folders that are not results are skipped; unfinished results are skipped with a warning."""
    found = False
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        try:
            found = load_one(path, inputs) or (path.is_dir() and load_collection(path, inputs, warn)) or found
        except ResultsError as error:
            warn(f"warning: skipping {error}")
    return found


def load_inputs(paths, warn=print_warning):
    """Sort each path into the kind of result it holds; a folder of results adds each; unknown paths raise."""
    inputs = Inputs()
    for path in map(Path, paths):
        if not path.exists():
            raise ResultsError(f"result path not found: {path}")
        if not load_one(path, inputs) and not (path.is_dir() and load_collection(path, inputs, warn)):
            raise ResultsError(
                f"{path} is not a result vitbench knows (sweep folder, pytest-benchmark JSON, training run, "
                "study folder, or a folder holding some)"
            )
    return inputs


def unique_tags(paths, name=lambda path: path.name):
    """One tag per input for its file names: the name (made a plain file name: an input's name is data), then
    name-2, name-3... for a name seen before."""
    tags = []
    for path in paths:
        base = tag = path_tag(name(path))
        while tag in tags:
            tag = f"{base}-{int(tag.rpartition('-')[2]) + 1 if tag != base else 2}"
        tags.append(tag)
    return tags


def markdown(frame):
    """A Markdown table with "–" for a missing cell (not "nan"), its text escaped."""
    return md_table(frame.astype(object).where(frame.notna(), None), missingval="–")


class ReportWriter:
    """Writes tables and figures into `out`, listing each in index.md before it is written: a report that is
    interrupted still has an index (marked unfinished) naming every file it began, so `--overwrite` replaces it."""

    def __init__(self, out, prov, sources, overwrite=False, reads=()):
        self.out, self.prov, self.sources = Path(out), prov, sources
        # a stale plot from an earlier report must not survive; nor may the report overlap what it reads
        REPORT_FOLDER.start(self.out, overwrite=overwrite, reads=reads)
        self.sections, self.page_sections = [], []
        self.write_index(finished=False)

    def add(self, section, page_section):
        self.sections.append(section)
        self.page_sections.append(page_section)
        self.write_index(finished=False)

    def table(self, name, frame, title, source):
        frame = frame.round(4)
        self.add((title, source, f"[{name}.md]({name}.md) ([csv]({name}.csv), [tex]({name}.tex))",
                  markdown(frame.head(20))), (title, source, "table", frame))
        atomic_write_text(self.out / f"{name}.csv", frame.to_csv(index=False))  # missing cells stay empty here
        atomic_write_text(self.out / f"{name}.md", markdown(frame) + "\n")
        atomic_write_text(self.out / f"{name}.tex", latex_table(frame))

    def figure(self, name, fig, title, source):
        fig.tight_layout()
        self.add((title, source, f"![{title}]({name}.png) ([svg]({name}.svg))", None),
                 (title, source, "figure", self.out / f"{name}.png"))
        save_figure(fig, self.out / name, formats=("png", "svg"), dpi=120)

    def text(self, title, source, lines):
        """A section of sentences (a study's comparisons, stated by the interval rule), as plain text."""
        self.add((title, source, "\n".join(md_lines(lines)), None), (title, source, "text", lines))

    def finish(self):
        """The final index.md, then index.html: the same sections on one self-contained page."""
        index = self.write_index(finished=True)
        prov = self.prov
        header = [f"Made {prov['date']} by {prov['command']} at commit {prov['git_commit']}.",
                  f"Report machine: {prov['device']}; versions: "
                  + ", ".join(f"{k} {v}" for k, v in prov["versions"].items() if v) + ".",
                  "Inputs: " + ", ".join(str(path) for path in self.sources) if self.sources else "No inputs."]
        atomic_write_text(self.out / PAGE, html.page("vitbench report", header, self.page_sections))
        return index

    def write_index(self, finished):
        prov = self.prov
        lines = [
            REPORT_TITLE,
            "",
            md(f"Made {prov['date']} by `{prov['command']}` at commit `{prov['git_commit']}`."),
            "",
            md(f"Report machine: {prov['device']}; versions: "
               + ", ".join(f"{k} {v}" for k, v in prov["versions"].items() if v) + "."),
            "",
        ]
        if not finished:
            lines += ["**Unfinished**: this report is being written, or was interrupted; run the same command with "
                      "`--overwrite` to replace it.", ""]
        if self.sources:
            lines += ["Inputs:", ""] + [md(f"- `{path}`") for path in self.sources] + [""]
        for title, source, link, preview in self.sections:  # titles and links: fixed words and plain tags
            lines += [f"## {title}", "", md(f"Source: {source}"), "", link, ""]
            if preview:
                lines += [preview, ""]
        atomic_write_text(self.out / INDEX, "\n".join(lines))
        return self.out / INDEX


def source_line(prov):
    return (
        f"{prov['device']}, torch {prov['versions']['torch']}, timm {prov['versions']['timm']}, "
        f"{prov['date']}, `{prov['command']}`"
    )


def benchmark_source(data):
    machine, commit = data["machine_info"], data.get("commit_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", machine.get("processor", "?"))
    # a suite run from before the allocator policy existed ran under glibc's defaults
    allocators = sorted({b["extra_info"].get("allocator", "system") for b in data["benchmarks"]})
    return (f"{cpu}, {machine.get('python_version')}, {data['datetime']}, commit {commit.get('id', '?')[:10]}, "
            f"allocator {'/'.join(allocators)}, pytest-benchmark")


def study_source(record):
    prov = record["provenance"]
    return (f"{prov['device']}, torch {prov['versions']['torch']}, {prov['date']}, `{prov['command']}`, "
            f"data `{record['spec']['data']}`")


# ----------------------------------------------------------------------------- one section per input kind


def add_paper_tables(writer, date):
    counted = f"counted by vitbench (analytic, equal to fvcore and torch counters within 1%), {date}"
    counts = tables.published_counts()
    paper = tables.paper_table(counts)
    writer.table(
        "paper_models",
        paper.drop(columns=["family"]),
        "The paper's models: published vs ours",
        f"bench/cost/published.csv (reference facts) beside parameters and MACs {counted}",
    )
    writer.figure(
        "accuracy_vs_macs",
        plots.accuracy_vs_macs(paper),
        "Accuracy vs MACs",
        f"published top-1 (bench/cost/published.csv), MACs {counted}",
    )
    breakdown = tables.mac_breakdown(counts)
    writer.table("mac_breakdown", breakdown, "MACs breakdown per model (G)", counted)
    writer.figure(
        "mac_breakdown", plots.mac_breakdown(breakdown), "MACs breakdown: tokenizer / attention / MLP", counted
    )
    writer.table("cifar10_models", tables.cifar_models(), "CIFAR-10 models (32 px): ours beside the published figures",
                 f"bench/cost/published_cifar10.csv (../shared/data/cifar10/README.md) beside parameters and MACs "
                 f"{counted}; published MACs appear to leave out attention's QK^T and AV (see macs_without_qk_av_G)")


def add_sweep(writer, tag, table, prov):
    wide = tables.sweep_wide(table)
    writer.table(
        f"cost_{tag}",
        tables.cost_table(wide),
        f"Cost per configuration ({tag}; every measurement in [cost_{tag}_all.csv](cost_{tag}_all.csv))",
        source_line(prov),
    )
    atomic_write_text(writer.out / f"cost_{tag}_all.csv", wide.to_csv(index=False))  # listed by the table above
    for axis in tables.crossed_axes(table, plots.AXES):
        for measurement, (label, scale) in plots.SWEEP_PLOTS.items():
            if measurement in wide and wide[measurement].notna().any():
                writer.figure(
                    f"{measurement}_vs_{axis}_{tag}",
                    plots.sweep_axis(wide, axis, measurement, label, scale, note=tables.setup_note(table)),
                    f"{label} vs {plots.AXES[axis]} ({tag})",
                    source_line(prov),
                )


def add_benchmarks(writer, tag, data):
    writer.table(
        f"timings_{tag}", tables.benchmark_table(data), f"pytest-benchmark timings ({tag})", benchmark_source(data)
    )
    ratios = tables.ratio_table(data)
    if len(ratios):
        writer.table(
            f"speed_ratios_{tag}",
            ratios,
            f"Ours vs baseline, same config ({tag}); speedup > 1 = ours faster",
            benchmark_source(data),
        )


def training_curves(runs):
    return plots.training_curves(runs, [tables.run_family(config) for _, config, _, _ in runs])


def add_runs(writer, runs):
    writer.table(
        "accuracy_runs",
        tables.accuracy_table(runs),
        "Training runs: accuracy and cost",
        "the runs' config.json, metrics.jsonl and summary.json: " + ", ".join(str(p) for p, *_ in runs),
    )
    writer.figure("training_curves", training_curves(runs), "Training curves", "the runs' metrics.jsonl")


def add_study(writer, path, tag, results, record):
    table = study.aggregate(results)
    writer.table(
        f"study_{tag}", table, f"From-scratch study ({tag}): top-1 mean and spread over seeds", study_source(record)
    )
    writer.text(f"From-scratch study ({tag}): what the intervals allow us to say", study_source(record),
                [*study.comparison_sentences(results), f"- {study.test_noise_line(results)}"])
    if (multiplier_table := study.multipliers(results)) is not None:
        writer.table(f"multiplier_{tag}", multiplier_table,
                     f"Data multiplier ({tag}): images the ViT needs to match each T2T arm", study_source(record))
        writer.text(f"Data multiplier ({tag}): what the intervals allow us to say", study_source(record),
                    study.multiplier_lines(results, multiplier_table))
    for name, fig in study.study_figures(results, table, multiplier_table, study.histories(results, path)).items():
        writer.figure(f"{name}_{tag}", fig, f"{name.replace('_', ' ')} ({tag})", study_source(record))
    suffix = f"-f{results.fraction.max():g}-s{results.seed.min()}"
    final = (
        [load_run(run) for run in sorted((path / "runs").iterdir()) if suffix in run.name]
        if (path / "runs").is_dir()
        else []
    )
    if final:
        writer.figure(
            f"training_curves_{tag}",
            training_curves(final),
            f"Training curves of the study's full-data runs, seed {results.seed.min()} ({tag})",
            study_source(record),
        )


def build_report(paths: list, out: str | Path, argv: list[str] | None = None, overwrite: bool = False) -> Path:
    """Write every table and plot the inputs allow into `out`; returns the index path. The folder is locked
    meanwhile: a second report into it is refused instead of mixing its files in."""
    inputs = load_inputs(paths)
    prov = provenance("cpu", argv)
    with folder_lock(out, "report"):
        writer = ReportWriter(out, prov, inputs.sources(), overwrite, reads=paths)
        add_paper_tables(writer, prov["date"])
        for tag, (_, table, sweep_prov) in zip(unique_tags(p for p, *_ in inputs.sweeps), inputs.sweeps):
            add_sweep(writer, tag, table, sweep_prov)
        for tag, (_, data) in zip(unique_tags((p for p, _ in inputs.benchmarks), lambda p: p.stem),
                                  inputs.benchmarks):
            add_benchmarks(writer, tag, data)
        if inputs.runs:
            add_runs(writer, inputs.runs)
        for tag, (path, results, record) in zip(unique_tags(p for p, *_ in inputs.studies), inputs.studies):
            add_study(writer, path, tag, results, record)
        return writer.finish()
