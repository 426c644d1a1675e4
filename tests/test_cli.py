import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skft._defaults import resolve_lr
from skft.cli.demo import DemoSettings, _search_description, _search_splits
from skft.cli.main import main

from conftest import TINY, TINY_SIZE, make_images

ROOT = Path(__file__).parents[1]
SUBCOMMANDS = ["demo", "fit", "predict", "backbones"]


def run(capsys, *args):
    """Run ``skft ARGS`` in this process; return (exit status, stdout, stderr)."""
    try:
        status = main([str(arg) for arg in args])
    except SystemExit as exit_:  # --help
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def write_class_folders(root, images, labels):
    for index, (image, label) in enumerate(zip(images, labels)):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / label / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Class folders of tiny PNGs (cat: bright top-left quadrant, dog: top-right), one-class and empty folders."""
    root = tmp_path_factory.mktemp("cli")
    images, codes = make_images(24, n_classes=2, channels=3)
    labels = np.array(["cat", "dog"])[codes]
    write_class_folders(root / "data", images, labels)
    write_class_folders(root / "one_class", images[:4], ["cat"] * 4)
    write_class_folders(root / "one_class", images[4:6], [".hidden"] * 2)
    write_class_folders(root / "wrapped" / "inner", images, labels)
    (root / "empty").mkdir()
    (root / "not_a_model.joblib").write_text("hello")
    return root


@pytest.fixture(scope="module")
def model(folders):
    """A model saved by ``skft fit`` on the tiny backbone."""
    path = folders / "model.joblib"
    status = main(
        [
            "fit",
            str(folders / "data"),
            "-o",
            str(path),
            "--backbone",
            TINY,
            "--image-size",
            str(TINY_SIZE),
            "--epochs",
            "8",
            "--mode",
            "full",
            "--grid",
            "lr=1e-2,3e-2",
            "--grid",
            "batch_size=8",
            "--cv",
            "2",
        ]
    )
    assert status == 0
    return path


@pytest.mark.parametrize("args", [[], *([command] for command in SUBCOMMANDS)])
def test_help_on_every_subcommand(capsys, args):
    status, out, _ = run(capsys, *args, "--help")
    assert status == 0
    assert out.startswith(f"usage: skft {' '.join(args)}".rstrip())
    for command in [] if args else SUBCOMMANDS:
        assert command in out


def test_fit_prints_the_search_table_and_saves_the_best_model(capsys, folders, model):
    status, out, _ = run(
        capsys,
        "fit",
        folders / "data",
        "-o",
        folders / "again.joblib",
        "--backbone",
        TINY,
        "--image-size",
        TINY_SIZE,
        "--epochs",
        1,
        "--grid",
        "lr=1e-2,3e-2",
        "--cv",
        2,
    )
    assert status == 0
    header, *rows = out.splitlines()[:3]
    assert header.split() == ["lr", "mean_test_score", "std_test_score", "mean_fit_time", "rank_test_score"]
    assert {row.split()[0] for row in rows} == {"0.01", "0.03"}
    assert "best parameters: {'lr':" in out and (folders / "again.joblib").is_file()
    assert "2-fold CV accuracy" in (folders / "again.md").read_text()  # the model card, written by default


def test_predict_writes_csv_for_files_and_folders(capsys, folders, model):
    dog = sorted((folders / "data" / "dog").iterdir())[0]
    status, out, _ = run(capsys, "predict", model, dog, folders / "data" / "cat")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1 + 12
    assert rows[0]["path"] == str(dog)
    assert {row["label"] for row in rows} <= {"cat", "dog"}
    assert all(0.5 <= float(row["probability"]) <= 1 for row in rows)
    accuracy = np.mean([row["label"] == Path(row["path"]).parent.name for row in rows])
    assert accuracy > 0.8


def test_backbones_table_and_one_backbone_in_detail(capsys):
    status, out, _ = run(capsys, "backbones", "resnet1")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == ["name", "blocks", "parameters", "weights"]
    table = {row.split()[0]: row.split()[1:] for row in rows}
    assert [name for name in table if not name.startswith("timm:")] == [
        "resnet101",
        "resnet152",
        "resnet18",
        "wide_resnet101_2",
    ]
    assert table["resnet18"][:2] == ["5", "11,176,512"]
    status, out, _ = run(capsys, "backbones", "efficientnet_lite0")
    assert status == 0 and "9 blocks" in out and "available offline" in out


def test_the_unfiltered_listing_counts_timm_names_instead_of_building_each(capsys, monkeypatch):
    pytest.importorskip("timm")
    import skft.backbones

    built = []

    def summarize(name):
        built.append(name)
        return skft.backbones.BackboneSummary(name, [("block", 1)], None, None, False, "mean")

    monkeypatch.setattr(skft.backbones, "summarize_backbone", summarize)
    status, out, _ = run(capsys, "backbones")
    timm_names = [name for name in skft.list_backbones() if name.startswith("timm:")]
    assert status == 0 and len(timm_names) > 100
    assert built == [name for name in skft.list_backbones() if not name.startswith("timm:")]
    assert f"timm: {len(timm_names)} more names" in out and "  convnext " in out
    status, out, _ = run(capsys, "backbones", "timm:resnet18.a1")
    assert status == 0 and built[-1].startswith("timm:resnet18.a1")


@pytest.fixture
def no_torchvision_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))


BAD_ARGUMENTS = {
    "no command": [],
    "unknown command": ["train"],
    "fit without DATA_DIR": ["fit"],
    "fit without -o": ["fit", "{data}"],
    "missing folder": ["fit", "{root}/missing", "-o", "{root}/m"],
    "one class only": ["fit", "{root}/one_class", "-o", "{root}/m"],
    "no class folders": ["fit", "{root}/empty", "-o", "{root}/m"],
    "unknown backbone": ["fit", "{data}", "-o", "{root}/m", "--backbone", "resnet50x"],
    "weights not on disk": ["fit", "{data}", "-o", "{root}/m", "--backbone", "resnet18"],
    "unknown mode": ["fit", "{data}", "-o", "{root}/m", "--mode", "fulll"],
    "grid without =": ["fit", "{data}", "-o", "{root}/m", "--grid", "lr"],
    "grid without values": ["fit", "{data}", "-o", "{root}/m", "--grid", "lr="],
    "grid with an empty value": ["fit", "{data}", "-o", "{root}/m", "--grid", "lr=1e-3,"],
    "grid of an unknown parameter": ["fit", "{data}", "-o", "{root}/m", "--grid", "learning_rate=1e-3"],
    "grid of an invalid value": ["fit", "{data}", "-o", "{root}/m", "--grid", "lr=-1"],
    "grid parameter twice": ["fit", "{data}", "-o", "{root}/m", "--grid", "lr=1e-3", "--grid", "lr=1e-2"],
    "cv below 2": ["fit", "{data}", "-o", "{root}/m", "--cv", "1"],
    "cv not a number": ["fit", "{data}", "-o", "{root}/m", "--cv", "three"],
    "more folds than images": ["fit", "{data}", "-o", "{root}/m", "--backbone", TINY, "--cv", "50"],
    "epochs zero": ["fit", "{data}", "-o", "{root}/m", "--epochs", "0"],
    "predict without paths": ["predict", "{root}/model.joblib"],
    "missing model": ["predict", "{root}/missing.joblib", "{data}"],
    "not a model file": ["predict", "{root}/not_a_model.joblib", "{data}"],
    "missing image path": ["predict", "{root}/model.joblib", "{root}/missing.png"],
    "no images": ["predict", "{root}/model.joblib", "{root}/empty"],
    "no backbone matches": ["backbones", "zzz"],
    "demo output is a file": ["demo", "-o", "{root}/not_a_model.joblib"],
    "option abbreviated": ["fit", "{data}", "-o", "{root}/m", "--backbone", TINY, "--epoch", "1"],
    "option misspelt": ["fit", "{data}", "-o", "{root}/m", "--image_size", "8"],
    "quiet and verbose": ["fit", "{data}", "-o", "{root}/m", "--quiet", "--verbose"],
    "one class's folder": ["fit", "{data}/cat", "-o", "{root}/m"],
    "a folder around the class folders": ["fit", "{root}/wrapped", "-o", "{root}/m"],
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_bad_arguments_end_with_one_line_and_status_2(capsys, folders, model, no_torchvision_weights, case):
    args = [arg.format(root=folders, data=folders / "data") for arg in BAD_ARGUMENTS[case]]
    status, out, err = run(capsys, *args)
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("skft") and ": error: " in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("given", "meant"),
    [("--epoch", "--epochs"), ("--image_size", "--image-size"), ("--grd", "--grid"), ("--Quiet", "--quiet")],
)
def test_options_are_never_abbreviated_and_a_typo_names_the_option_meant(capsys, folders, given, meant):
    status, _, err = run(capsys, "fit", folders / "data", "-o", folders / "m", "--backbone", TINY, given, "1")
    assert status == 2
    assert f"unrecognized arguments: {given} 1; did you mean {meant}?" in err


def test_every_parser_refuses_abbreviations():
    from skft.cli.main import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert not parser.allow_abbrev and not any(command.allow_abbrev for command in commands.values())


def test_folder_one_level_off_names_the_folder_to_give(capsys, folders):
    _, _, err = run(capsys, "fit", folders / "data" / "cat", "-o", folders / "m")
    assert "holds images directly" in err and f"its parent {str(folders / 'data')!r}" in err
    _, _, err = run(capsys, "fit", folders / "wrapped", "-o", folders / "m")
    assert f"give {str(folders / 'wrapped' / 'inner')!r}" in err


def test_messages_show_labels_as_plain_values(capsys, folders):
    _, _, err = run(capsys, "fit", folders / "data", "-o", folders / "m", "--backbone", TINY, "--cv", 50)
    assert "{'cat': 12, 'dog': 12}" in err and "np." not in err
    _, _, err = run(capsys, "fit", folders / "one_class", "-o", folders / "m")
    assert "['cat']" in err and "np." not in err


FIT_TINY = ["--backbone", TINY, "--image-size", TINY_SIZE, "--epochs", 2, "--cv", 2]


def test_fit_without_grid_says_so_in_a_sentence(capsys, folders):
    status, out, _ = run(capsys, "fit", folders / "data", "-o", folders / "plain.skft", *FIT_TINY)
    assert status == 0
    assert "best parameters: {}" not in out
    assert "no --grid: the parameters as given (2-fold CV accuracy" in out


def test_progress_in_a_log_is_whole_lines_one_per_fit(capsys, folders):
    status, _, err = run(
        capsys, "fit", folders / "data", "-o", folders / "log.skft", *FIT_TINY, "--grid", "lr=1e-2,3e-2"
    )
    assert status == 0
    assert "\r" not in err and "\x1b" not in err and err.endswith("\n")
    lines = err.splitlines()
    assert [line.split(",")[0] for line in lines] == [f"search: fit {k}/5" for k in range(1, 6)]
    assert all(", trained 2 epochs in " in line for line in lines)


def test_progress_in_a_subprocess_log_has_no_cursor_codes(folders):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import conftest; "
                "from skft.cli import main; sys.exit(main(sys.argv[1:]))"
            ),
            "fit",
            str(folders / "data"),
            "-o",
            str(folders / "sub.skft"),
            *map(str, FIT_TINY),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        # The tiny fits take 2 steps: their "loss barely moved" warnings are right, and not what this test reads.
        env={**os.environ, "PYTHONWARNINGS": "ignore:The training loss barely moved"},
    )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    assert done.stderr.splitlines() == [line for line in done.stderr.splitlines() if line.startswith("search: fit ")]


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_is_bars_redrawn_in_place(capsys, folders, monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    status, _, _ = run(capsys, "fit", folders / "data", "-o", folders / "tty.skft", *FIT_TINY)
    assert status == 0
    shown = terminal.getvalue()
    assert "\r" in shown and "search: 100%" in shown and "epochs:" in shown and "search: fit" not in shown


def test_quiet_prints_no_progress_and_verbose_adds_the_epoch_tables(capsys, folders):
    status, out, err = run(capsys, "fit", folders / "data", "-o", folders / "q.skft", *FIT_TINY, "--quiet")
    assert status == 0 and err == "" and "CV accuracy" in out
    status, out, err = run(capsys, "fit", folders / "data", "-o", folders / "v.skft", *FIT_TINY, "--verbose")
    assert status == 0 and len(err.splitlines()) == 3
    assert out.count("train_loss") == 3  # one epoch table per fit (2 folds and the refit)


def test_backbones_in_a_log_draw_no_bar(capsys):
    status, _, err = run(capsys, "backbones", "resnet1")
    assert status == 0 and err == ""


def test_unreadable_image_is_a_usage_error(capsys, folders, model, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    status, _, err = run(capsys, "predict", model, tmp_path)
    assert status == 2 and "cannot read image" in err and len(err.strip().splitlines()) == 1


def test_console_script_entry_and_python_dash_m():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '[project.scripts]\nskft = "skft.cli:main"\n' in pyproject
    done = subprocess.run(
        [sys.executable, "-m", "skft", "fit", "/no/such/folder", "-o", "m"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 2
    assert done.stderr == "skft fit: error: DATA_DIR '/no/such/folder' is not a folder\n"


def test_demo_search_ranks_on_draws_and_refits_on_every_digit():
    settings = DemoSettings(n_train=60, n_train_full=10, max_epochs=1, cv=2, n_search=20)
    y = np.repeat(np.arange(3), 20)
    splits = list(_search_splits(settings).split(np.zeros((60, 1)), y))
    assert len(splits) == 2
    for fit_rows, score_rows in splits:
        assert len(fit_rows) == len(score_rows) == 20 and not set(fit_rows) & set(score_rows)
        assert sorted(np.bincount(y[fit_rows])) == [6, 7, 7]  # stratified
    assert not np.array_equal(splits[0][0], splits[1][0])
    assert "refitted on all 60" in _search_description(vars(settings))
    folds = DemoSettings(n_train=60, n_train_full=10, max_epochs=1, cv=3)
    assert _search_splits(folds) == 3
    assert _search_description(vars(folds)) == "3-fold CV accuracy"


@pytest.mark.slow
def test_demo_quick_writes_every_file(capsys, tmp_path):
    status, out, _ = run(capsys, "demo", "--quick", "-o", tmp_path)
    assert status == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["results.json", "learning_curves.png", "confusion_matrix.png", "modes.png"]
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["best_params"]) == {"lr", "batch_size"}
    assert len(results["search"]) == 2
    assert [row["mode"] for row in results["modes"]] == ["feature_extraction", "repurpose", "full"]
    # Every mode resolves its own default learning rate; no private rule for "full".
    lrs = {row["mode"]: row["lr"] for row in results["modes"]}
    assert lrs["full"] == resolve_lr("auto", "efficientnet_lite0", "full", pretrained=True)
    assert lrs["feature_extraction"] == resolve_lr("auto", "efficientnet_lite0", "feature_extraction", pretrained=True)
    assert all(row["one_time"] >= 0 for row in results["modes"])
    assert [row["model"] for row in results["baselines"]] == [
        "LogisticRegression on pixels",
        "3-nearest neighbours on pixels",
    ]
    assert 0 <= results["test_accuracy"] <= 1
    assert "held-out test accuracy" in out


# -- texts from CSV files (a text backbone: the tiny BERT fixture as a model directory) --------------


@pytest.fixture(scope="module")
def text_csvs(tmp_path_factory):
    """A tiny BERT model directory and CSV files of short reviews (columns review, sentiment)."""
    from text_fixtures import make_texts, save_tiny_model

    root = tmp_path_factory.mktemp("cli_text")
    texts, codes = make_texts(24)
    labels = np.array(["neg", "pos"])[codes]
    for name, rows in [("train.csv", zip(texts, labels)), ("new.csv", zip(texts[:5] + [""], ["?"] * 6))]:
        with open(root / name, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["review", "sentiment"])
            writer.writerows(rows)
    return root, save_tiny_model("bert", root / "bert"), texts


@pytest.fixture(scope="module")
def text_model(text_csvs):
    root, bert, _ = text_csvs
    path = root / "text.model"
    status = main(
        [
            "fit",
            str(root / "train.csv"),
            "-o",
            str(path),
            "--backbone",
            str(bert),
            "--text-column",
            "review",
            "--label-column",
            "sentiment",
            "--mode",
            "full",
            "--epochs",
            "2",
            "--grid",
            "lr=1e-2",
            "--cv",
            "2",
            "-q",
        ]
    )
    assert status == 0
    return path


def test_fit_on_a_csv_of_texts_and_predict_a_csv(capsys, text_csvs, text_model):
    from skft import load

    root, _, texts = text_csvs
    status, out, err = run(capsys, "predict", text_model, root / "new.csv", "--text-column", "review")
    assert status == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["review", "label", "probability"]
    assert [row[0] for row in rows[1:]] == texts[:5] + [""]
    assert [row[1] for row in rows[1:]] == list(load(text_model).predict(texts[:5] + [""]))


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--text-column", "text", "--label-column", "sentiment"],
            "--text-column 'text' is not a column of {csv!r}, whose columns are ['review', 'sentiment']",
        ),
        (
            ["--text-column", "review", "--label-column", "sentimnt"],
            "--label-column 'sentimnt' is not a column of {csv!r}, whose columns are ['review', 'sentiment']; "
            "did you mean --label-column sentiment?",
        ),
    ],
)
def test_fit_names_a_missing_column_and_the_columns_present(capsys, text_csvs, args, message):
    root, bert, _ = text_csvs
    csv_path = str(root / "train.csv")
    status, _, err = run(capsys, "fit", csv_path, "-o", root / "never.model", "--backbone", bert, *args)
    assert status == 2
    assert message.format(csv=csv_path) in err


def test_predict_names_a_missing_text_column(capsys, text_csvs, text_model):
    root, _, _ = text_csvs
    status, _, err = run(capsys, "predict", text_model, root / "new.csv")
    assert status == 2
    assert "--text-column 'text' is not a column" in err and "['review', 'sentiment']" in err


def test_the_backbone_decides_what_data_fit_reads(capsys, text_csvs, folders):
    root, bert, _ = text_csvs
    status, _, err = run(capsys, "fit", folders / "data", "-o", root / "never.model", "--backbone", bert)
    assert status == 2 and "reads texts: give a CSV file" in err
    status, _, err = run(capsys, "fit", root / "train.csv", "-o", root / "never.model", "--backbone", TINY)
    assert status == 2 and "choose a text backbone, e.g. --backbone all-MiniLM-L6-v2" in err
