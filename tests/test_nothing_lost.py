"""Nothing lost, nothing unusable: every output honours --overwrite, a command works with any one of its inputs,
a log holds lines (no \\r frames), a spec with no run is refused before anything is written, a resume may run with
other threads and workers, and a resumed run's logs hold every point in a format their readers take."""
import json

import pytest

from bench.accuracy import train
from bench.cli import build_parser, main, profile_config
from bench.cost.dialect import model_names
from models.errors import ConfigError
from tests.harness_helpers import cli_error, make_imagenet_root, tiny_config, tiny_synthetic


def test_profile_keeps_an_existing_results_file_without_overwrite(tmp_path, capsys):
    existing = tmp_path / "results.csv"
    existing.write_text("mine\n")
    line = cli_error(capsys, "profile", "vit_lite_tiny", "--results-file", str(existing))
    assert "already exists; pass --overwrite" in line and existing.read_text() == "mine\n"


def test_profile_takes_a_model_list_alone(tmp_path):
    (tmp_path / "models.txt").write_text("vit_lite_tiny\n\nt2t_vit_7\n")
    config = profile_config(build_parser().parse_args(["profile", "--model-list", str(tmp_path / "models.txt")]))
    assert model_names(config.models, config.model_list) == ["vit_lite_tiny", "t2t_vit_7"]


def test_subset_writes_lines_not_carriage_return_frames_into_a_log(tmp_path, capsys):
    root = make_imagenet_root(tmp_path / "imagenet", ["n01440764", "n02102040", "n02979186"], train_per_class=3)
    assert main(["subset", "random-2", "--root", str(root), "--out", str(tmp_path / "sub"), "--per-class", "1"]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "\r" not in captured.out and "random-2" in captured.out


@pytest.mark.parametrize("key", ["fractions", "seeds", "arms"])
def test_a_study_spec_with_no_run_is_refused_before_anything_is_written(tmp_path, capsys, key):
    spec = {"fractions": [1.0], "seeds": [0], "arms": [{"name": "vit", "label": "ViT", "model": "vit_lite_tiny",
                                                          "depths": [1]}], key: []}
    (tmp_path / "spec.toml").write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in spec.items() if k != "arms")
                                        + "\n" + ("" if key == "arms" else '[[arms]]\nname = "vit"\nlabel = "ViT"\n'
                                                  'model = "vit_lite_tiny"\ndepths = [1]\n'))
    line = cli_error(capsys, "study", "--config", str(tmp_path / "spec.toml"), "--data", str(tmp_path / "d"),
                     "--out", str(tmp_path / "out"))
    assert f"study spec: {key}" in line and " must " in line and not (tmp_path / "out").exists()


def test_a_holdout_too_large_speaks_of_the_holdout(tmp_path):
    from bench.accuracy.train_data import scan_samples

    data = tiny_synthetic(tmp_path / "data", classes=3, train_per_class=4, val_per_class=1)
    with pytest.raises(Exception, match=r"holdout=12 holds out 4 images of each class.*at most 9") as info:
        scan_samples(tiny_config(data, tmp_path / "o", holdout=12), print)
    assert "per-class" not in str(info.value) and "K <=" not in str(info.value)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A 2-epoch run logging to TensorBoard, validated only at its end, stopped right after its first epoch was
    saved; then resumed with other threads and workers."""
    root = tmp_path_factory.mktemp("resume")
    data = tiny_synthetic(root / "data", classes=3, train_per_class=8, val_per_class=2)
    config = tiny_config(data, root / "run", model="vb_vit_tiny_patch16_224", epochs=2, validations=1,
                         log="tensorboard")

    def stop_after_first_epoch(message):
        if message.startswith("epoch 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.start(config, progress="epochs", warn=stop_after_first_epoch)
    summary = train.resume(root / "run", {"threads": 2, "workers": 1}, progress=False)
    return root / "run", summary


def test_a_resume_may_use_other_threads_and_workers_but_nothing_that_changes_the_recipe(interrupted):
    run, summary = interrupted
    assert summary["epochs_trained"] == 2
    with pytest.raises(ConfigError, match="cannot resume with other settings: lr="):
        train.resume_config(run, {"lr": 0.5, "threads": 3})


def test_a_resumed_run_s_metrics_are_json_and_its_tensorboard_keeps_every_point(interrupted):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, summary = interrupted
    text = (run / "metrics.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]  # strict JSON: no bare NaN
    assert "NaN" not in text and rows[0]["top1"] is None and rows[1]["top1"] is not None
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    steps = [event.step for event in events.Scalars("train/loss")]
    assert steps == list(range(1, summary["updates"] + 1))  # every update once, those before the stop included
    assert [event.step for event in events.Scalars("epoch/train_loss")] == [rows[0]["updates"], rows[1]["updates"]]


def test_eval_scores_the_classes_a_run_trained_on_with_the_threads_given(tmp_path, capsys):
    data = tiny_synthetic(tmp_path / "data", classes=3, train_per_class=4, val_per_class=2)
    chosen = sorted(path.name for path in (data / "train").iterdir())[1:]
    train.start(tiny_config(data, tmp_path / "run", model="vb_vit_tiny_patch16_224", epochs=1, batch_size=4,
                            classes=chosen), progress=False)
    checkpoint = str(tmp_path / "run" / "best.pth")
    assert "trained on other classes" in cli_error(capsys, "eval", "--checkpoint", checkpoint, "--data", str(data),
                                                   "--workers", "0")
    assert main(["eval", "--checkpoint", checkpoint, "--data", str(data), "--workers", "0", "--classes", *chosen,
                 "--threads", "1", "--out", str(tmp_path / "eval.json")]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["classes"] == chosen and result["images"] == 4
