"""`vitbench report`: every kind of result becomes tables and plots with provenance."""
import json
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from bench import suite
from bench.cost.sweep import SweepSpec, run_sweep
from bench.errors import ResultsError
from bench.report.build import build_report, load_inputs

from .conftest import REPO


@pytest.fixture(scope="module")
def benchmark_json(tmp_path_factory):
    """A real pytest-benchmark JSON from the smoke-size baseline pairs."""
    path = tmp_path_factory.mktemp("bench") / "benchmarks.json"
    subprocess.run([sys.executable, "-m", "pytest", "bench/bench_pairs.py", "-q", "--bench-size=smoke",
                    "--benchmark-only", f"--benchmark-json={path}", "-p", "no:cacheprovider"], cwd=REPO, check=True,
                   capture_output=True)
    return path


@pytest.mark.slow
def test_report_from_sweep_and_benchmarks(tmp_path, benchmark_json):
    sweep_dir = tmp_path / "sweep-tiny"
    spec = SweepSpec.from_flat(
        dict(
            families=["vit", "t2t-transformer"],
            depth=[1, 2],
            embed_dim=[32],
            num_heads=[2],
            img_size=[32],
            patch_size=[8],
            measure=["params", "macs", "throughput"],
            batch_size=2,
            warmup=0,
            repeats=1,
        )
    )
    run_sweep(spec, sweep_dir, progress=lambda _: None)
    index = build_report([sweep_dir, benchmark_json], tmp_path / "report", argv=["vitbench", "report"])
    text = index.read_text()
    out = index.parent
    for name in ("paper_models", "mac_breakdown", "cost_sweep-tiny", "timings_benchmarks", "speed_ratios_benchmarks"):
        for suffix in ("md", "csv", "tex"):
            assert (out / f"{name}.{suffix}").is_file(), name
        assert f"({name}.md)" in text
    for name in ("accuracy_vs_macs", "mac_breakdown", "sweep_sweep-tiny"):  # the sweep: one faceted figure
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.svg").is_file()
    assert not list(out.glob("*_vs_depth_*"))
    assert "torch" in text and "Source:" in text and str(sweep_dir) in text
    for table in out.glob("*.tex"):  # tables that compile: every name and header escaped, booktabs rules
        tex = table.read_text()
        assert "\\toprule" in tex and "\\bottomrule" in tex and not re.search(r"(?<!\\)[_%#]", tex), table.name
        assert not re.search(r"\bnan\b", tex), table.name
    for table in out.glob("*.md"):  # a missing cell is "–", never "nan"
        assert not re.search(r"\|\s*nan\s*\|", table.read_text()), table.name

    paper = pd.read_csv(out / "paper_models.csv")
    assert (paper.params_diff == 0).all() and paper.macs_diff_pct.abs().max() < 2
    assert {"params (M)", "MACs (G)", "inference (img/s)"} <= set(pd.read_csv(out / "cost_sweep-tiny.csv").columns)
    cost = pd.read_csv(out / "cost_sweep-tiny_all.csv")
    assert set(cost.family) == {"vit", "t2t-transformer"} and set(cost.depth) == {1, 2}
    assert (cost.tokenizer_mac_share > 0).all()
    t2t, vit = (cost[cost.family == f].tokenizer_mac_share.mean() for f in ("t2t-transformer", "vit"))
    assert t2t > vit
    with pytest.raises(ResultsError, match="already holds a report.*--overwrite"):
        build_report([benchmark_json], out)
    assert build_report([benchmark_json], out, overwrite=True) == index
    assert not (out / "cost_sweep-tiny.csv").exists()  # nothing stale survives an overwrite
    ratios = pd.read_csv(out / "speed_ratios_benchmarks.csv")
    assert len(ratios) == 2 * len(suite.SIZES["smoke"]["pair_case"]) and (ratios.speedup > 0).all()  # both modes
    assert (ratios.mac_efficiency > 0).all() and set(ratios["mode"]) == {"inference", "train"}
    assert ratios.front_share.notna().all() and ratios.speedup_bound.notna().all()  # our tokenizer timed alone too
    assert set(ratios.allocator) == {"steady"} and "allocator steady, pytest-benchmark" in index.read_text()
    assert json.loads(benchmark_json.read_text())["ratios"].keys() == set(ratios.pair)


def test_report_refuses_what_it_does_not_know(tmp_path):
    with pytest.raises(ResultsError, match="not found"):
        load_inputs([tmp_path / "missing"])
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ResultsError, match="not a result vitbench knows"):
        load_inputs([tmp_path / "other.json"])
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ResultsError, match="not valid JSON"):
        load_inputs([tmp_path / "broken.json"])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ResultsError, match="already holds other files; choose another --out$"):
        build_report([], tmp_path / "notes", overwrite=True)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "provenance.json").write_text(json.dumps({"tool": "vitbench sweep"}))
    with pytest.raises(ResultsError, match="unfinished sweep.*--resume"):
        load_inputs([unfinished])


@pytest.mark.slow
def test_benchmark_histogram_and_compare_work_on_the_pairs(tmp_path):
    """--benchmark-histogram (pygal, in the test extras) and --benchmark-compare run on the pairs' JSON."""
    args = [sys.executable, "-m", "pytest", "bench/bench_pairs.py", "-q", "--bench-size=smoke", "--benchmark-only",
            "-p", "no:cacheprovider", "-k", "t2t_vit_7 and inference"]
    first, storage = tmp_path / "first.json", f"--benchmark-storage=file://{tmp_path / 'storage'}"
    subprocess.run([*args, f"--benchmark-json={first}", f"--benchmark-histogram={tmp_path / 'hist'}", storage,
                    "--benchmark-autosave"], cwd=REPO, check=True, capture_output=True)
    assert list(tmp_path.glob("hist*.svg"))
    compared = subprocess.run([*args, storage, "--benchmark-compare"], cwd=REPO, capture_output=True, text=True)
    shown = compared.stdout + compared.stderr  # pytest-benchmark names the saved run it compares with on stderr
    assert compared.returncode == 0 and "Comparing against benchmarks from" in shown, shown[-2000:]
    data = json.loads(first.read_text())
    assert all(b["extra_info"]["timed_call"] == "ours alone" for b in data["benchmarks"])


def test_figures_place_labels_apart_start_throughput_at_zero_and_draw_the_spread():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection

    from bench.report import plots, tables

    paper = tables.paper_table(tables.published_counts())
    fig = plots.accuracy_vs_macs(paper)
    renderer = FigureCanvasAgg(fig).get_renderer()
    boxes = [text.get_window_extent(renderer) for text in fig.axes[0].texts]
    assert len(boxes) >= 10 and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    wide = pd.DataFrame({"family": ["vit"] * 3, "patch_size": [16] * 3, "depth": [2, 4, 8],
                         "throughput_inference": [900.0, 500.0, 260.0], "throughput_inference_q1": [880.0, 480, 250],
                         "throughput_inference_q3": [920.0, 510, 270]})
    fig = plots.sweep_axis(wide, "depth", "throughput_inference", "images/s", note="batch 8, cpu, 2 threads, float32")
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0 and any(isinstance(c, PolyCollection) for c in ax.collections)
    assert any(text.get_text() == "batch 8, cpu, 2 threads, float32" for text in ax.texts)


def test_setup_note_reads_how_the_timings_ran():
    from bench.report.tables import setup_note

    table = pd.DataFrame({"measurement": ["params", "throughput_inference"], "batch_size": [8, 8],
                          "device": ["cpu", "cpu"], "threads": [None, 2.0], "dtype": ["float32", "float32"]})
    assert setup_note(table) == "batch 8, cpu, 2 threads, float32"


def test_a_figure_saved_twice_is_the_same_bytes(tmp_path):
    """A rebuilt report changes only the files whose figures changed: no date, no random SVG ids."""
    from bench.report import plots, tables
    from bench.report.style import save_figure

    fig = plots.accuracy_vs_macs(tables.paper_table(tables.published_counts()))
    first = save_figure(fig, tmp_path / "a" / "fig", formats=("png", "svg"))
    second = save_figure(fig, tmp_path / "b" / "fig", formats=("png", "svg"))
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in second]


COMMITTED = [REPO / "results" / name for name in ("sweep-image-size", "study-cifar10-multiplier",
                                                 "pretrained-cifar10/study")]


@pytest.fixture(scope="module")
def committed_report(tmp_path_factory):
    """A report of committed results (results/ is part of the repository): a sweep, the multiplier study and the
    pretrained study, whose folder is named `study` and whose title is in the README above it."""
    return build_report(COMMITTED, tmp_path_factory.mktemp("committed") / "report", argv=["vitbench", "report"])


def headings(text):
    return [line for line in text.splitlines() if line.startswith("#")]


def test_the_report_opens_with_the_answer_and_names_each_study_by_its_title(committed_report):
    text = committed_report.read_text()
    parts = [line[3:] for line in headings(text) if line.startswith("## ")]
    assert parts[:2] == ["Contents", "The answer"] and parts[-1] == "Cost: the paper's models, sweeps and timings"
    titles = [part for part in parts[2:-1]]
    assert titles == ["The data multiplier on CIFAR-10: ViT vs T2T-ViT at 5% to 100% of the images (2-core CPU)",
                      "Pretrained then fine-tuned vs from scratch, proven end to end on CIFAR-10 (2-core CPU)"]
    assert "(study)" not in text and "From-scratch study" not in text  # never the folder's name
    assert not [line for line in headings(text) if "](" in line]  # no heading shows Markdown link syntax
    answer = text.split("## The answer")[1].split("\n## ")[0]
    assert "![Paired differences to each study's baseline](forest.png)" in answer
    assert "ViT-Lite tiny pretrained on the other five classes, then fine-tuned is ahead of ViT-Lite tiny from " \
           "scratch by" in answer  # the pretrained study's sentence, by its interval
    assert "- At 45,000 training images: no difference between T2T-ViT-Lite tiny (Performer T2T)" in answer
    contents = re.findall(r"^ *- \[([^]]+)\]\(#([^)]+)\)$", text.split("## The answer")[0], re.M)
    assert len(contents) == len(headings(text)) - 2  # every part and section but the title and the contents
    for link, anchor in contents:  # GitHub's anchors: lower case, punctuation dropped, a repeat numbered
        slug = re.sub(r"[^\w\- ]", "", link.lower()).replace(" ", "-")
        assert re.fullmatch(re.escape(slug) + r"(-\d+)?", anchor), (link, anchor)
    out = committed_report.parent
    assert (out / "sweep_sweep-image-size.png").is_file() and not list(out.glob("*_vs_img_side_*"))
    assert "; every measurement: [cost_sweep-image-size_all.csv](cost_sweep-image-size_all.csv)" in text
    # top-5 only where the task has more than 5 classes: the pretrained study's five classes make it 100%
    assert "test_top5_mean" not in pd.read_csv(out / "study_study.csv")
    assert "test_top5_mean" in pd.read_csv(out / "study_study-cifar10-multiplier.csv")


def test_a_wide_table_is_split_into_readable_ones_repeating_the_names_of_its_rows(committed_report):
    from bench.report.build import WIDE_COLUMNS

    full = pd.read_csv(committed_report.parent / "study_study-cifar10-multiplier.csv")
    assert len(full.columns) > 2 * WIDE_COLUMNS  # the CSV keeps every column
    page = (committed_report.parent / "index.html").read_text()
    heading = r"Test top-1 over seeds and the paired difference to ViT-Lite[^<]*</h3>"  # the multiplier study's
    section = re.split(heading, page)[1].split("<h3")[0]
    shown = re.findall(r"<table.*?</table>", section, re.S)
    assert len(shown) >= 2 and all('<div class="wide">' + table in section for table in shown)
    columns = [re.findall(r"<th>([^<]*)</th>", table) for table in shown]
    assert all(len(c) <= WIDE_COLUMNS and c[:3] == ["label", "depth", "fraction"] for c in columns)
    assert {name for c in columns for name in c} == set(full.columns)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (apt-get install chromium)")
def test_the_page_loads_offline_in_a_real_browser_and_its_contents_land_on_their_sections(committed_report):
    page = committed_report.parent / "index.html"
    text = page.read_text()
    assert not re.search(r'(src|href)="(https?:|//)', text)  # nothing fetched: readable offline
    links = re.findall(r'<a href="#([^"]+)">', text)
    assert len(links) > 20 and len(set(links)) == len(links)
    assert all(f'id="{anchor}"' in text for anchor in links)
    dom = subprocess.run([shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=10000", "--window-size=1280,900", "--dump-dom",
                          page.as_uri() + "?selftest"], capture_output=True, text=True, timeout=180).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    seen = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body[1]))
    assert seen.get("script-errors") == "0" and int(seen["images"]) >= 10, seen
    assert seen["images-ok"] == seen["images"], seen  # every figure decoded
    # every link of the contents names its heading and, followed, brings it to the top of the window
    assert seen["toc"] == seen["toc-ok"] == seen["toc-landed"] == str(len(links)), seen


def test_a_hostile_study_title_is_text_on_the_page_and_in_the_index(tmp_path):
    folder = shutil.copytree(REPO / "results" / "pretrained-cifar10" / "study", tmp_path / "s" / "study")
    (tmp_path / "s" / "README.md").write_text("# <script>alert(1)</script> [x](javascript:alert(1)) $x$ `y`\n")
    index = build_report([folder], tmp_path / "report")
    text, page = index.read_text(), (tmp_path / "report" / "index.html").read_text()
    assert "<script>alert" not in text and "](javascript" not in text and "## &lt;script&gt;alert(1)" in text
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; x $x$ y</h2>" in page


def test_the_forest_plot_has_a_panel_per_study_and_marks_what_is_stated():
    from bench.accuracy.study import ArmRoles
    from bench.report.study import forest_plot, forest_rows

    rows = [{"arm": arm, "label": label, "fraction": 1.0, "seed": seed, "test_top1": top1 + seed * 0.1 * (arm == "t2t")}
            for seed in range(3) for arm, label, top1 in (("vit", "ViT", 50.0), ("t2t", "T2T $x$", 53.0),
                                                           ("cnn", "CNN", 50.0))]
    roles = ArmRoles("vit")
    diffs = forest_rows(pd.DataFrame(rows), roles)
    fig = forest_plot([("a study", diffs), ("another", diffs.iloc[:1])])
    assert len(fig.axes) == 2 and [ax.get_title(loc="left") for ax in fig.axes] == ["a study", "another"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["T2T \\$x\\$ (3 seeds)", "CNN (3 seeds)"]
    assert forest_rows(pd.DataFrame(rows).query("arm != 'vit'"), roles) is None  # no ViT arm: nothing to plot
    assert forest_rows(pd.DataFrame(rows), ArmRoles()) is None  # no baseline: nothing to plot
    fig.savefig(__import__("io").BytesIO(), format="png")  # a "$" in a label is no mathematics


def test_accuracy_against_speed_draws_the_pareto_front():
    from bench.report.study import pareto_front

    assert pareto_front([500, 380, 290, 230], [60.0, 64.0, 60.0, 56.0]) == ([500, 380], [60.0, 64.0])
    assert pareto_front([1, 2], [5.0, 5.0]) == ([2], [5.0])


def test_training_curves_name_each_run_once():
    from bench.report import plots

    metrics = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.5], "val_loss": [2.1, 1.6], "top1": [10.0, 20.0]})
    runs = [(REPO / name, {"model": "vit_lite_tiny", "seed": 0}, None, metrics) for name in ("vit-s0", "pre-s0")]
    fig = plots.training_curves(runs, ["vit", "vit"])
    labels = [text.get_text() for text in fig.legends[0].get_texts()]
    assert labels == ["vit_lite_tiny (seed 0) [vit-s0]", "vit_lite_tiny (seed 0) [pre-s0]"]
    assert [line.get_linestyle() for line in fig.axes[0].lines] == ["-", "--"]  # one family: told apart
    fig = plots.training_curves(runs, ["vit", "vit"], labels=["scratch", "pretrained"])
    assert [text.get_text() for text in fig.legends[0].get_texts()] == ["scratch", "pretrained"]


def test_a_study_over_several_fractions_reports_its_data_multiplier(committed_report):
    """The committed multiplier study: the report states the multiplier by its interval, tables it and draws it,
    as the study's own report.md does."""
    study_folder = REPO / "results" / "study-cifar10-multiplier"
    index = committed_report.read_text()
    table = pd.read_csv(committed_report.parent / "multiplier_study-cifar10-multiplier.csv")
    own = (study_folder / "report.md").read_text()
    assert list(table["train_images"]) == [2250, 4500, 11250, 22500, 45000]
    part = index.split("\n## The data multiplier on CIFAR-10")[1]  # the study's own part
    assert "### Data multiplier: what the intervals allow us to say" in part
    # two seeds: the bootstrap excludes 1 but the direct difference's t-interval includes 0, so nothing is claimed
    sentences = [line for line in part.splitlines() if line.startswith("- No data multiplier is claimed between")]
    assert len(sentences) == 1 and sentences[0] in own and "at 45,000 images: the direct difference's t-interval " \
        "includes 0" in sentences[0]
    assert (committed_report.parent / "top1_vs_images_study-cifar10-multiplier.png").is_file()


@pytest.mark.slow
def test_a_scaling_study_shows_each_budget_as_it_lands_and_its_laws_once_two_have(tmp_path):
    from tests.test_scaling import synthetic_study

    folder = tmp_path / "scaling"
    folder.mkdir()
    (folder / "README.md").write_text("# Where does the answer flip?\n")
    synthetic_study(folder)  # three budgets with results, a fourth running
    for budget in ("b0.01", "b0.04"):  # results without their study's record: in the laws, not shown as studies
        (folder / budget / "study.json").unlink()
    record = json.loads((REPO / "results" / "study-cifar10-multiplier" / "study.json").read_text())
    (folder / "b0.02" / "study.json").write_text(json.dumps(record))  # one budget with its study's record
    shutil.rmtree(folder / "b0.02" / "runs")  # per-image predictions only: no run folders to draw
    results = pd.read_csv(folder / "b0.02" / "results.csv")
    results.assign(label=results["arm"], model="m", train_images=45000, classes=10, params=1, macs=1,
                   train_images_per_s=100.0).to_csv(folder / "b0.02" / "results.csv", index=False)
    index = build_report([folder], tmp_path / "report").read_text()
    assert "## Where does the answer flip?\n" in index and "still running or to run: 0.08" in index
    assert "## Where does the answer flip?: 0.02 PFLOP per run" in index  # the budget with a record: a study
    assert "### Test top-1 against training compute: the laws and the predictions" in index
    laws = pd.read_csv(tmp_path / "report" / "scaling_laws_scaling.csv")
    assert list(laws["arm"]) == ["vit", "t2t-performer", "cnn"] and (laws["runs"] == 6).all()
    assert (tmp_path / "report" / "forest.png").is_file()
    for budget in ("b0.01", "b0.04"):
        shutil.rmtree(folder / budget)
    index = build_report([folder], tmp_path / "report", overwrite=True).read_text()
    assert "- No law yet: a law needs runs at 2 budgets or more; 1 finished so far." in index


def test_a_run_shows_top5_only_where_its_task_has_more_than_5_classes():
    from bench.report.tables import accuracy_table

    metrics = pd.DataFrame({"epoch": [1], "top1": [70.0], "top5": [100.0], "train_images_per_s": [9.0],
                            "peak_mem_mb": [1.0]})
    five = (REPO / "five", {"model": "vit_lite_tiny", "classes": ["a", "b", "c", "d", "e"]}, None, metrics)
    ten = (REPO / "ten", {"model": "vit_lite_tiny"}, {"classes": 10, "params": 1, "device": "cpu"}, metrics)
    assert "top5" not in accuracy_table([five])
    assert accuracy_table([five, ten])["top5"].tolist()[1] == 100.0 and pd.isna(accuracy_table([five, ten])["top5"][0])
