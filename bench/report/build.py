"""`vitbench report`: tables (Markdown, CSV, LaTeX) and plots (PNG, SVG) from any mix of results.

Inputs are recognised by what they hold: a sweep folder (`provenance.json` from `vitbench
sweep`), a pytest-benchmark JSON (`--benchmark-json`), a training run folder, a study
folder or a compute-scaling study (a folder of `b<budget>/` study folders). The paper's model
table is always built: published numbers beside our counts. Everything lands in one folder
with an `index.md` (and the same as one page, `index.html`) that links each table and plot and
says where its numbers came from.

The report reads in the order a reader asks: a table of contents; the answer (every study's
seed-paired differences to its baseline in one forest plot, and each study's sentences by the
interval rule, in short); then each study under its own title (its spec's `title`, its
README's first heading, or that of the folder above when it holds this study alone), the
held-out studies first, a scaling study's budgets as they land and its laws once two have,
pretraining next, superseded and test-selected studies last; then the costs (the paper's
models, sweeps, timings); then single training runs.
"""
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.accuracy.study import recorded_roles
from bench.errors import ResultsError
from bench.names import path_tag
from bench.outputs import OutputFolder, folder_lock, read_back
from bench.provenance import provenance
from bench.report import html, plots, scaling, study, tables
from bench.report.markup import latex_table, md, md_lines, md_table
from bench.report.style import save_figure
from models.atomic import atomic_write_text

REPORT_TITLE = "# vitbench report"
INDEX, PAGE = "index.md", "index.html"
WIDE_COLUMNS = 10  # a table wider than this is shown split (index.md, index.html); its files keep every column
TABLE_KEYS = ("label", "run", "name", "pair", "fraction", "depth", "model", "family", "patch_size", "img_size",
              "mode")  # the columns that name a row, the most telling first


def report_files(out):
    """What a report of ours wrote: its index and every file the index links."""
    text = (Path(out) / INDEX).read_text()
    return {INDEX, PAGE, *re.findall(r"\]\(([^)/#]+)\)", text)}  # not the contents' #anchors


REPORT_FOLDER = OutputFolder(kind="report", marker=INDEX, holds="a report",
                             is_marked=lambda index: index.read_text().startswith(REPORT_TITLE), listed=report_files)


@dataclass
class Inputs:
    sweeps: list = field(default_factory=list)      # (path, tidy table, provenance)
    benchmarks: list = field(default_factory=list)  # (path, pytest-benchmark JSON)
    runs: list = field(default_factory=list)        # (path, config, summary or None, metrics table)
    studies: list = field(default_factory=list)     # (path, results table, study.json)
    scalings: list = field(default_factory=list)    # (path, [(budget, path, results, study.json)], [budgets pending])
    # a budget with results but no study.json has None for both

    def sources(self):
        return [path for path, *_ in self.sweeps + self.benchmarks + self.runs + self.studies + self.scalings]


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


def load_scaling(path, inputs):
    """A compute-scaling study: a folder of `b<budget>/` study folders. Each budget with results is a study of its
    own; those still running are listed as pending. False for any other folder."""
    budgets = sorted((float(match[1]), folder) for folder in path.iterdir()
                     if folder.is_dir() and (match := scaling.BUDGET_FOLDER.fullmatch(folder.name)))
    if not budgets:
        return False
    finished, pending = [], []
    for budget, folder in budgets:
        if not (folder / "results.csv").is_file():
            pending.append(budget)
        elif (folder / "study.json").is_file():
            found = Inputs()
            load_study(folder, found)
            finished.append((budget, *found.studies[0]))
        else:  # results without the study's record: in the laws, not shown as a study
            finished.append((budget, folder, None, None))
    inputs.scalings.append((path, finished, pending))
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
    if path.is_dir() and load_scaling(path, inputs):
        return True
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


@dataclass
class Section:
    """One table, figure or list of sentences: its Markdown form (link and preview) and its page form."""
    title: str
    source: str
    kind: str  # "table", "figure" or "text"
    content: object  # a DataFrame, a PNG path or lines
    link: str  # Markdown: the files it was written to
    preview: str | None = None  # Markdown: the table or sentences themselves


@dataclass
class Part:
    """A titled group of sections: the answer, a study, the costs."""
    title: str
    intro: list = field(default_factory=list)  # sentences under the part's heading
    sections: list = field(default_factory=list)


def link_text(title):
    """A title as a Markdown link's (or image's) text: escaped, and no bracket that would end the text early."""
    return md(title).replace("[", "(").replace("]", ")")


def wide_chunks(frame, keys=TABLE_KEYS, width=WIDE_COLUMNS):
    """A table of more than `width` columns as several tables of at most `width`, each repeating the columns that
    name a row (those of `keys` it has): every column readable without scrolling sideways."""
    if len(frame.columns) <= width:
        return [frame]
    chosen = [key for key in keys if key in frame.columns][:3]
    named = [column for column in frame.columns if column in chosen]
    rest = [column for column in frame.columns if column not in named]
    step = width - len(named)
    return [frame[named + rest[i:i + step]] for i in range(0, len(rest), step)]


class ReportWriter:
    """Writes tables and figures into `out`, listing each in index.md before it is written: a report that is
    interrupted still has an index (marked unfinished) naming every file it began, so `--overwrite` replaces it.
    Sections are grouped in parts (`part`), shown in the order they were added, with a table of contents."""

    def __init__(self, out, prov, sources, overwrite=False, reads=()):
        self.out, self.prov, self.sources = Path(out), prov, sources
        # a stale plot from an earlier report must not survive; nor may the report overlap what it reads
        REPORT_FOLDER.start(self.out, overwrite=overwrite, reads=reads)
        self.parts = []
        self.write_index(finished=False)

    def part(self, title, intro=()):
        """Start a part: the sections added next belong to it."""
        self.parts.append(Part(title, list(intro)))

    def add(self, section):
        if not self.parts:
            self.part("Results")
        self.parts[-1].sections.append(section)
        self.write_index(finished=False)

    def table(self, name, frame, title, source, note=""):
        frame = frame.round(4)
        preview = "\n\n".join(markdown(chunk) for chunk in wide_chunks(frame.head(20)))
        self.add(Section(title, source, "table", frame,
                         f"[{name}.md]({name}.md) ([csv]({name}.csv), [tex]({name}.tex)){note}", preview))
        atomic_write_text(self.out / f"{name}.csv", frame.to_csv(index=False))  # missing cells stay empty here
        atomic_write_text(self.out / f"{name}.md", markdown(frame) + "\n")
        atomic_write_text(self.out / f"{name}.tex", latex_table(frame))

    def figure(self, name, fig, title, source):
        if fig.get_layout_engine() is None:  # a figure laid out by its maker (constrained) keeps its layout
            fig.tight_layout()
        self.add(Section(title, source, "figure", self.out / f"{name}.png",
                         f"![{link_text(title)}]({name}.png) ([svg]({name}.svg))"))
        save_figure(fig, self.out / name, formats=("png", "svg"), dpi=120)

    def text(self, title, source, lines):
        """A section of sentences (a study's comparisons, stated by the interval rule), as plain text."""
        self.add(Section(title, source, "text", lines, "", "\n".join(md_lines(lines))))

    def finish(self):
        """The final index.md, then index.html: the same parts and sections on one self-contained page."""
        index = self.write_index(finished=True)
        prov = self.prov
        header = [f"Made {prov['date']} by {prov['command']} at commit {prov['git_commit']}.",
                  f"Report machine: {prov['device']}; versions: "
                  + ", ".join(f"{k} {v}" for k, v in prov["versions"].items() if v) + ".",
                  "Inputs: " + ", ".join(str(path) for path in self.sources) if self.sources else "No inputs."]
        atomic_write_text(self.out / PAGE, html.page("vitbench report", header, self.parts, wide_chunks))
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
        slugs = Slugs(taken=["vitbench report", "Contents"])
        contents, body = ["## Contents", ""], []
        for part in self.parts:  # titles are text (a study's title is data): escaped, then linked by their slug
            contents.append(f"- [{link_text(part.title)}](#{slugs(part.title)})")
            body += [f"## {md(part.title)}", "", *md_lines(part.intro), *([""] if part.intro else [])]
            for section in part.sections:
                contents.append(f"  - [{link_text(section.title)}](#{slugs(section.title)})")
                body += [f"### {md(section.title)}", "", md(f"Source: {section.source}"), ""]
                for text in (section.link, section.preview):
                    if text:
                        body += [text, ""]
        lines += (contents + [""] if self.parts else []) + body
        atomic_write_text(self.out / INDEX, "\n".join(lines))
        return self.out / INDEX


class Slugs:
    """The anchors a Markdown renderer (GitHub's) gives headings: lower case, punctuation dropped, spaces as
    hyphens, a repeated one numbered (-1, -2...) in the order the headings come."""

    def __init__(self, taken=()):
        self.seen = {}
        for title in taken:
            self(title)

    def __call__(self, title):
        base = re.sub(r"[^\w\- ]", "", str(title).lower()).replace(" ", "-")
        count = self.seen.get(base, 0)
        self.seen[base] = count + 1
        return base if count == 0 else f"{base}-{count}"


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


COST_PART = "Cost: the paper's models, sweeps and timings"


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
    writer.table(f"cost_{tag}", tables.cost_table(wide), f"Cost per configuration ({tag})", source_line(prov),
                 note=f"; every measurement: [cost_{tag}_all.csv](cost_{tag}_all.csv)")
    atomic_write_text(writer.out / f"cost_{tag}_all.csv", wide.to_csv(index=False))  # listed by the table above
    axes = tables.crossed_axes(table, plots.AXES)
    measurements = {m: shown for m, shown in plots.SWEEP_PLOTS.items() if m in wide and wide[m].notna().any()}
    if axes and measurements:
        writer.figure(f"sweep_{tag}", plots.sweep_facets(wide, axes, measurements, note=tables.setup_note(table)),
                      f"Cost against each axis swept ({tag}): " + ", ".join(plots.AXES[axis] for axis in axes),
                      source_line(prov))


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


def training_curves(runs, labels=None):
    return plots.training_curves(runs, [tables.run_family(config) for _, config, _, _ in runs], labels)


def add_runs(writer, runs):
    writer.part("Training runs")
    writer.table(
        "accuracy_runs",
        tables.accuracy_table(runs),
        "Training runs: accuracy and cost",
        "the runs' config.json, metrics.jsonl and summary.json: " + ", ".join(str(p) for p, *_ in runs),
    )
    writer.figure("training_curves", training_curves(runs), "Training curves", "the runs' metrics.jsonl")


# ----------------------------------------------------------------------------- studies: their titles and the answer


def plain_markdown(text):
    """A Markdown heading's words: links as their text, no emphasis or code marks."""
    text = re.sub(r"\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)", r"\1", text)  # a link's address may hold (...)
    return " ".join(text.replace("`", "").replace("**", "").replace("__", "").split())


def readme_heading(folder):
    """(title, superseded): the first `# ` heading of the folder's README.md (None without one), and whether the
    README's opening says the study is superseded."""
    readme = Path(folder) / "README.md"
    if not readme.is_file():
        return None, False
    lines = readme.read_text(errors="replace").splitlines()
    title = next((plain_markdown(line[2:]) for line in lines if line.startswith("# ")), None)
    return title or None, "superseded" in " ".join(lines[:8]).lower()


@dataclass
class StudyInput:
    path: Path
    tag: str
    results: pd.DataFrame
    record: dict
    title: str = ""
    superseded: bool = False
    budget: float | None = None  # a budget of a compute-scaling study
    scaling: object = None  # that study: (path, tag, title, finished budgets, pending budgets)

    @property
    def pretraining(self):
        return any("init" in variant for variant in self.record["spec"].get("variants", []))

    @property
    def held_out(self):
        return "holdout" in self.record["spec"].get("train", {})

    @property
    def roles(self):
        """Its baseline and MAC-matched arms, from its record (`recorded_roles`), never from the arms' names."""
        return recorded_roles(self.record["spec"])

    @property
    def multiplier(self):
        return study.multipliers(self.results, self.roles)

    def rank(self):
        """The order of the report: studies scored under the protocol (held out) first, the plain comparison
        before the data multiplier before pretraining, superseded ones last; newest first within."""
        if self.budget is not None:  # a scaling study's budgets together, the smallest first
            return (self.superseded, not self.held_out, 1.5, (self.budget,))
        kind = 2 if self.pretraining else 1 if self.results["fraction"].nunique() > 1 else 0
        date = self.record.get("provenance", {}).get("date", "")
        return (self.superseded, not self.held_out, kind, tuple(-ord(c) for c in date))


def study_title(path, record, tag):
    """(title, superseded) of a study: the spec's `title`, else its README's heading, else that of the folder
    above when it holds this study alone (a study inside a larger experiment: `pretrained-cifar10/study`); else
    its kind and tag. Never the folder's name alone where the study has a title of its own."""
    path = Path(path)
    title, superseded = readme_heading(path)
    parent = path.resolve().parent
    alone = not any((sibling / "study.json").is_file() for sibling in parent.iterdir()
                    if sibling.is_dir() and sibling.resolve() != path.resolve())
    if title is None and alone:
        title, superseded = readme_heading(parent)
    kind = ("Pretraining study" if any("init" in v for v in record["spec"].get("variants", []))
            else "From-scratch study")
    return str(record["spec"].get("title") or title or f"{kind} ({tag})"), superseded


def protocol_summary(item):
    """One line: how the study's runs were trained and scored."""
    spec, results = item.record["spec"], study.upgraded(item.results)
    train = spec.get("train", {})
    length = next((f"{train[k]:g} {unit} per run" for k, unit in (("budget_pflop", "PFLOP"),
                   ("budget_minutes", "minutes"), ("epochs", "epochs")) if k in train), "the default epochs")
    images = results["train_images"].max() if "train_images" in results else None
    scored = ("test scored once, at the end, after choosing on a holdout" if item.held_out else
              "no holdout: the per-epoch scores were read on the test split")
    return (f"{results['arm'].nunique()} arms, {results['seed'].nunique()} seeds, {length}"
            + (f", up to {images:,.0f} training images" if images else "") + f"; {scored}.")


def answer_lines(item):
    """A study's answer in short: at its largest training set, each arm against the baseline (and the MAC-matched
    ViT) by the interval rule, and the data multiplier where it has one."""
    results = study.upgraded(item.results)
    largest = results[results["fraction"] == results["fraction"].max()]
    where = ""
    if results["fraction"].nunique() > 1:
        where = f"At {largest['train_images'].max():,.0f} training images: " if "train_images" in largest else \
            f"At fraction {largest['fraction'].max():g}: "
    lines = [f"- {where}{sentence[0].lower() + sentence[1:] if where and sentence.startswith('No ') else sentence}"
             for sentence in (line.removeprefix("- ") for line in study.comparison_sentences(largest, item.roles))]
    if (table := item.multiplier) is not None:
        lines += study.multiplier_lines(item.results, table, item.roles)
    return [f"- {protocol_summary(item)}", *lines] if lines else [f"- {protocol_summary(item)}",
                                                                  "- No baseline arm to compare with."]


def add_answer(writer, items):
    """The report's first part: every study's paired differences to its baseline in one forest plot, and each
    study's sentences in short."""
    writer.part("The answer", [
        "Each arm's test top-1 minus its study's baseline arm's (the ViT from scratch, unless the study's spec names "
        "another; each panel says which), paired by seed, with its 95% t-interval, study by study. A difference "
        "is stated only when its interval excludes zero; otherwise no difference is detectable at that budget. "
        "Each study's own part below has its table, every comparison and its curves."])
    compared = [(f"{item.title}: vs {study.baseline_label(item.results, item.roles)}",
                 study.forest_rows(item.results, item.roles)) for item in items]
    compared = [(title, rows) for title, rows in compared if rows is not None and len(rows)]
    if compared:
        writer.figure("forest", study.forest_plot(compared), "Paired differences to each study's baseline",
                      "the studies' results.csv: " + ", ".join(str(item.path) for item in items))
    for item in items:
        writer.text(item.title, study_source(item.record), answer_lines(item))


FIGURE_TITLES = {
    "top1_vs_fraction": "Test top-1 vs training fraction",
    "top1_vs_images": "Test top-1 vs training images, with the data multiplier",
    "top1_vs_macs": "Test top-1 vs MACs per image",
    "top1_vs_throughput": "Test top-1 vs measured training images/s, with the Pareto front",
    "top1_vs_time": "Validation top-1 vs wall time",
    "top1_vs_pflop": "Validation top-1 vs training compute",
}


def add_study(writer, item):
    path, tag, results, record = item.path, item.tag, item.results, item.record
    source = study_source(record)
    writer.part(item.title, [f"Folder: {path}. {protocol_summary(item)}"])
    roles = item.roles
    table = study.aggregate(results, roles)
    writer.table(f"study_{tag}", table, "Test top-1 over seeds and the paired difference to "
                 f"{study.baseline_label(results, roles)}", source)
    writer.text("Comparisons: what the intervals allow us to say", source,
                [*study.comparison_sentences(results, roles), f"- {study.test_noise_line(results)}"])
    if (multiplier_table := item.multiplier) is not None:
        writer.table(f"multiplier_{tag}", multiplier_table, "Data multiplier: images the ViT needs to match each T2T "
                     "arm", source)
        writer.text("Data multiplier: what the intervals allow us to say", source,
                    study.multiplier_lines(results, multiplier_table, roles))
    for name, fig in study.study_figures(results, table, multiplier_table, roles,
                                         study.histories(results, path)).items():
        writer.figure(f"{name}_{tag}", fig, FIGURE_TITLES.get(name, name.replace("_", " ")), source)
    suffix = f"-f{results.fraction.max():g}-s{results.seed.min()}"
    final = (
        [load_run(run) for run in sorted((path / "runs").iterdir()) if suffix in run.name]
        if (path / "runs").is_dir()
        else []
    )
    if final:
        writer.figure(
            f"training_curves_{tag}",
            training_curves(final, study.run_labels(results, [run_path.name for run_path, *_ in final])),
            f"Training curves of the full-data runs, seed {results.seed.min()}",
            source,
        )


def scaling_laws(folder, boots=scaling.BOOTSTRAPS):
    """(figure, laws table) of a compute-scaling study's finished budgets, as `bench.report.scaling` draws them:
    test top-1 against training PFLOP, each arm's power law with its bootstrap band, the gap to the budgets' baseline
    (`scaling.budget_roles`; none: no gap) with its crossover and the pre-registered predictions. Raises
    ResultsError or ValueError where no law can be fitted yet."""
    by_budget, _ = scaling.read_budgets(folder)
    if len(by_budget) < 2:
        raise ResultsError(f"a law needs runs at 2 budgets or more; {len(by_budget)} finished so far")
    runs = pd.concat(by_budget.values(), ignore_index=True)
    roles = scaling.budget_roles(runs)
    baseline = roles.baseline
    fitted, boot, laws = scaling.fit_laws(runs, boots)
    gaps = {}
    for arm in fitted:
        if arm != baseline and baseline in fitted:
            try:
                gaps[arm] = scaling.gap_model(runs, arm, baseline, boots)
            except ResultsError:  # too few seed pairs yet: the laws are drawn without the gap's crossover
                pass
    predicted = scaling.preregistered_predictions(Path(folder) / scaling.PREDICTIONS_FILE)
    predicted = predicted[predicted["budget_pflop"].isin(list(by_budget))]
    return scaling.scaling_figure(runs, fitted, boot, gaps, predicted, scaling.anchor_point(), roles), laws


def add_scaling(writer, path, tag, title, finished, pending):
    """A compute-scaling study's overview part: which budgets have landed, and once two have, its laws."""
    budgets = ", ".join(f"{b:g}" for b in finished) or "none"
    writer.part(title, [f"Folder: {path}. Budgets finished (PFLOP per run): {budgets}; still running or to run: "
                        f"{', '.join(f'{b:g}' for b in pending) or 'none'}. Each finished budget is a study of its "
                        "own below; the laws are drawn once two budgets have finished."])
    source = f"the budgets' results.csv under {path}"
    try:
        fig, laws = scaling_laws(path)
    except (ResultsError, ValueError) as reason:
        writer.text("Test top-1 against training compute", source, [f"- No law yet: {reason}."])
        return
    writer.figure(f"scaling_{tag}", fig, "Test top-1 against training compute: the laws and the predictions", source)
    writer.table(f"scaling_laws_{tag}", laws, "Power laws: error = a C^-b per arm (95% bootstrap over seeds)", source)


def build_report(paths: list, out: str | Path, argv: list[str] | None = None, overwrite: bool = False) -> Path:
    """Write every table and plot the inputs allow into `out`; returns the index path. The folder is locked
    meanwhile: a second report into it is refused instead of mixing its files in. The answer comes first (every
    study's paired differences and sentences), then each study, then the costs, then single training runs."""
    inputs = load_inputs(paths)
    prov = provenance("cpu", argv)
    items = []
    for tag, (path, results, record) in zip(unique_tags(p for p, *_ in inputs.studies), inputs.studies):
        items.append(StudyInput(Path(path), tag, results, record, *study_title(path, record, tag)))
    for tag, (path, finished, pending) in zip(unique_tags(p for p, *_ in inputs.scalings), inputs.scalings):
        title = readme_heading(path)[0] or f"Compute-scaling study ({tag})"
        for budget, budget_path, results, record in (row for row in finished if row[3] is not None):
            items.append(StudyInput(Path(budget_path), f"{tag}-b{budget:g}", results, record,
                                    f"{title}: {budget:g} PFLOP per run", budget=budget,
                                    scaling=(Path(path), tag, title, [b for b, *_ in finished], pending)))
    items.sort(key=StudyInput.rank)
    with folder_lock(out, "report"):
        writer = ReportWriter(out, prov, inputs.sources(), overwrite, reads=paths)
        if items:
            add_answer(writer, items)
        shown = set()
        for item in items:
            if item.scaling is not None and item.scaling[0] not in shown:
                shown.add(item.scaling[0])
                add_scaling(writer, *item.scaling)
            add_study(writer, item)
        writer.part(COST_PART)
        add_paper_tables(writer, prov["date"])
        for tag, (_, table, sweep_prov) in zip(unique_tags(p for p, *_ in inputs.sweeps), inputs.sweeps):
            add_sweep(writer, tag, table, sweep_prov)
        for tag, (_, data) in zip(unique_tags((p for p, _ in inputs.benchmarks), lambda p: p.stem),
                                  inputs.benchmarks):
            add_benchmarks(writer, tag, data)
        if inputs.runs:
            add_runs(writer, inputs.runs)
        return writer.finish()
