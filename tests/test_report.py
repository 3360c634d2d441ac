"""`vitbench report`: every kind of result becomes tables and plots with provenance."""
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from bench import suite
from bench.cost.sweep import SweepSpec, run_sweep
from bench.report.build import build_report, load_inputs
from models import ResultsError

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
    for name in (
        "accuracy_vs_macs",
        "mac_breakdown",
        "throughput_inference_vs_depth_sweep-tiny",
        "macs_vs_depth_sweep-tiny",
    ):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.svg").is_file()
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


def test_a_study_over_several_fractions_reports_its_data_multiplier(tmp_path):
    """The committed multiplier study (results/ is part of the repository): the report states the multiplier by
    its interval, tables it and draws it, as the study's own report.md does."""
    study_folder = REPO / "results" / "study-cifar10-multiplier"
    index = build_report([study_folder], tmp_path / "report").read_text()
    table = pd.read_csv(tmp_path / "report" / "multiplier_study-cifar10-multiplier.csv")
    own = (study_folder / "report.md").read_text()
    assert list(table["train_images"]) == [2250, 4500, 11250, 22500, 45000]
    assert "## Data multiplier (study-cifar10-multiplier): what the intervals allow us to say" in index
    # two seeds: the bootstrap excludes 1 but the direct difference's t-interval includes 0, so nothing is claimed
    sentences = [line for line in index.splitlines() if line.startswith("- No data multiplier is claimed between")]
    assert len(sentences) == 1 and sentences[0] in own and "at 45,000 images: the direct difference's t-interval " \
        "includes 0" in sentences[0]
    assert (tmp_path / "report" / "top1_vs_images_study-cifar10-multiplier.png").is_file()
