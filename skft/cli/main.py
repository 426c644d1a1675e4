"""The ``skft`` command: an offline demo, fit and predict on image folders or CSV texts, the backbone registry.

Run ``skft --help`` or ``skft <command> --help``. Bad arguments end with one line on stderr and
exit status 2.
"""

import argparse
import ast
import csv
import difflib
import sys
from pathlib import Path

import numpy as np

from .._images.folders import IMAGE_EXTENSIONS, load_image_folder
from .._nn.assembly import MODES

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument, reported as one line ``<prog>: error: <message>`` with exit status 2.

    Parameters
    ----------
    message : str
    prog : str, optional
        The (sub)command; set by :func:`main` when omitted.
    """

    def __init__(self, message, prog=None):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), raised as :class:`UsageError`.

    Options are matched exactly (no prefix matching: ``--epoch`` is not ``--epochs``), and an
    unknown option names the closest known one.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)", prog=self.prog)

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = getattr(namespace, "parser", self)  # the subcommand's, set by build_parser
            parser.error(_unrecognized(extras, parser))
        return namespace


def _unrecognized(extras, parser):
    """``unrecognized arguments: ...``, with "did you mean" for an option close to one of ``parser``'s."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    known = [option for action in parser._actions for option in action.option_strings]
    for given in extras:
        if given.startswith("-"):
            close = difflib.get_close_matches(given.partition("=")[0], known, n=1, cutoff=0.6)
            if close:
                return f"{message}; did you mean {close[0]}?"
    return message


# -- argument types --------------------------------------------------------------------------------


def _integer_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


def _grid_entry(text):
    """Parse ``name=value1,value2`` into ``(name, [value1, value2])`` with Python literals where possible."""
    name, equals, values = text.partition("=")
    items = [item.strip() for item in values.split(",")]
    if not equals or not name.strip() or not all(items):
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form name=value1,value2 (e.g. lr=1e-3,3e-3)")
    return name.strip(), [_literal(item) for item in items]


def _literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# -- images on disk (the estimators read the files themselves, batch by batch) ---------------------


def find_images(path):
    """The image files under ``path``: the file itself, or a folder's images searched recursively.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of Path
        Sorted.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f"{str(path)!r} is neither a file nor a folder")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def class_folder_images(data_dir, min_per_class):
    """The image paths and labels of a folder with one subfolder of images per class, checked for a search.

    Parameters
    ----------
    data_dir : str or Path
    min_per_class : int
        The fewest images a class may have (the number of cross-validation folds).

    Returns
    -------
    paths : ndarray of str, shape (N,)
    labels : ndarray of str, shape (N,)
        The subfolder names.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise UsageError(f"DATA_DIR {str(root)!r} is not a folder")
    paths, labels = _class_folders(root)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise UsageError(_too_few_classes(root, [str(name) for name in classes]))
    small = {str(name): int(count) for name, count in zip(classes, counts) if count < min_per_class}
    if small:
        raise UsageError(f"classes {small} have fewer images than the {min_per_class} cross-validation folds")
    return paths, labels


def _class_folders(root):
    """``load_image_folder(root)``, or no images at all."""
    try:
        return load_image_folder(root)
    except ValueError:
        return np.array([], dtype=str), np.array([], dtype=str)


def _too_few_classes(root, classes):
    """Why ``root`` is not a folder of class folders, and which folder to give instead where one fits."""
    needed = "it needs one subfolder of images per class, at least 2"
    if not classes and _images_directly_in(root):
        return (
            f"DATA_DIR {str(root)!r} holds images directly, not in class subfolders; if it is the folder of one "
            f"class, give the folder that holds all the class folders (its parent {str(root.parent)!r}?)"
        )
    if len(classes) == 1 and len(set(_class_folders(root / classes[0])[1])) >= 2:
        return (
            f"DATA_DIR {str(root)!r} holds a single folder, {classes[0]!r}, which holds the class folders: "
            f"give {str(root / classes[0])!r}"
        )
    return f"DATA_DIR {str(root)!r} has {len(classes)} class subfolder(s) with images {classes}; {needed}"


def _images_directly_in(folder):
    """The image files in ``folder`` itself, not in its subfolders."""
    return [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]


# -- saving and loading models ---------------------------------------------------------------------


def _save_model(model, path, card=False):
    """Save in skft's safe format (loading it never runs code), creating the folder if needed; ``card``: see save."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    model.save(path, card=card)


# -- the commands ------------------------------------------------------------------------------------


def _run_demo(args):
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise UsageError(f"-o {args.output!r} exists and is not a folder")
    import matplotlib

    matplotlib.use("Agg")
    from .demo import format_report, run_demo

    print(format_report(run_demo(args.output, quick=args.quick, verbose=args.verbosity), args.output))


def _checked_backbone(name):
    """The backbone's summary; unknown names and weights not on disk are usage errors."""
    from ..backbones import summarize_backbone

    try:
        summary = summarize_backbone(name)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not summary.weights_available:
        raise UsageError(
            f"the weights of backbone {name!r} are not on disk ({summary.weights_file}); copy them there from a "
            "machine with internet, or pick one that `skft backbones` marks offline"
        )
    return summary


def _checked_grid(estimator, entries):
    """The ``--grid`` entries as a dict, every name and value checked against the estimator."""
    from sklearn.base import clone
    from sklearn.model_selection import ParameterGrid

    grid = {}
    for name, values in entries:
        if name in grid:
            raise UsageError(f"--grid {name} is given twice; list all its values once: {name}=v1,v2")
        if name not in estimator.get_params():
            raise UsageError(f"--grid {name}: not a parameter; choose from {', '.join(estimator.get_params())}")
        grid[name] = values
    for params in ParameterGrid(grid):
        try:
            clone(estimator).set_params(**params)._validate_params()
        except ValueError as error:
            raise UsageError(f"--grid: {error}") from None
    return grid


def _run_fit(args):
    from .._classification import FineTunedClassifier
    from ..backbones import backbone_modality
    from .search import grid_search, search_table

    _checked_backbone(args.backbone)
    modality = backbone_modality(args.backbone)
    params = dict(
        backbone=args.backbone,
        mode=args.mode,
        image_size=args.image_size,
        random_state=args.seed,
        verbose=int(args.verbosity > 1),
    )
    if args.epochs is not None:
        params["max_epochs"] = args.epochs
    estimator = FineTunedClassifier(**params)
    grid = _checked_grid(estimator, args.grid or [])
    X, labels = _training_data(args, modality)
    try:
        search = grid_search(estimator, grid, X, labels, cv=args.cv, verbose=args.verbosity)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(search_table(search).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    chosen = f"best parameters: {search.best_params_}" if grid else "no --grid: the parameters as given"
    print(f"{chosen} ({args.cv}-fold CV accuracy {search.best_score_:.3f})")
    card = False if args.no_card else {"scores": {f"{args.cv}-fold CV accuracy": float(search.best_score_)}}
    _save_model(search.best_estimator_, args.output, card)
    print(f"saved the best model, refitted on all {len(labels)} {modality}s, to {args.output}")
    if card:
        print(f"wrote its model card beside it: {Path(args.output).with_suffix('.md')}")


def _training_data(args, modality):
    """Images and labels from class folders, or (text backbones) texts and labels from a CSV file."""
    data = Path(args.data_dir)
    if modality == "text":
        if data.is_dir():
            raise UsageError(
                f"backbone {args.backbone!r} reads texts: give a CSV file with a text and a label column "
                f"(--text-column, --label-column), not the folder {str(data)!r}"
            )
        from .text_table import texts_and_labels

        try:
            return texts_and_labels(data, args.text_column, args.label_column, args.cv)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if data.is_file() and data.suffix.lower() in (".csv", ".tsv", ".txt"):
        raise UsageError(
            f"backbone {args.backbone!r} reads images from a folder of class folders; for the texts in "
            f"{str(data)!r}, choose a text backbone, e.g. --backbone all-MiniLM-L6-v2"
        )
    return class_folder_images(data, args.cv)


def _run_predict(args):
    from .._load import load

    if not Path(args.model).is_file():
        raise UsageError(f"MODEL {args.model!r} is not a file")
    try:
        model = load(args.model)
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(f"cannot load MODEL {args.model!r} ({type(error).__name__}: {error})") from None
    if not (hasattr(model, "predict_proba") and hasattr(model, "image_size_")):
        raise UsageError(f"MODEL {args.model!r} is not a fitted skft classifier (saved by `skft fit`)")
    if model.net_.module_.modality == "text":
        _predict_texts(model, args)
        return
    paths = [path for given in args.paths for path in find_images(given)]
    if not paths:
        raise UsageError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {' '.join(args.paths)}")
    try:
        proba = model.predict_proba([str(path) for path in paths])
    except ValueError as error:
        raise UsageError(f"cannot read images: {error}") from None
    _write_predictions("path", [str(path) for path in paths], model.classes_, proba)


def _predict_texts(model, args):
    """Predict the texts of ``args.text_column`` in each CSV file of ``args.paths``."""
    from .text_table import read_csv_columns

    try:
        texts = [
            text for path in args.paths for text in read_csv_columns(path, [args.text_column], ["--text-column"])[0]
        ]
    except ValueError as error:
        raise UsageError(str(error)) from None
    _write_predictions(args.text_column, texts, model.classes_, model.predict_proba(texts))


def _write_predictions(first_column, items, classes, proba):
    """CSV on stdout: each item, its predicted label and that label's probability."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([first_column, "label", "probability"])
    for item, row in zip(items, proba):
        writer.writerow([item, classes[row.argmax()], f"{row.max():.4f}"])


def _run_backbones(args):
    from tqdm import tqdm

    from ..backbones import list_backbones, summarize_backbone, timm_backbone_families
    from .progress import is_terminal

    registered = list_backbones()
    if args.filter in registered:
        print(summarize_backbone(args.filter).to_text())
        return
    # Without a filter, timm's hundreds of names are counted per family, not built one by one (minutes).
    timm_families = {} if args.filter else timm_backbone_families()
    skipped = {name for names in timm_families.values() for name in names}
    names = [name for name in registered if (args.filter or "").lower() in name.lower() and name not in skipped]
    if not names:
        close = difflib.get_close_matches(args.filter, registered, n=5, cutoff=0.5)
        raise UsageError(f"no backbone name contains {args.filter!r}" + (f"; close names: {close}" if close else ""))
    shown = args.verbosity and is_terminal(sys.stderr)  # a bar, never fragments of one in a log
    summaries = [
        summarize_backbone(name) for name in tqdm(names, desc="backbones", unit="net", leave=False, disable=not shown)
    ]
    width = max(len(name) for name in names)
    print(f"{'name':<{width}}  {'blocks':>6}  {'parameters':>13}  weights")
    for summary in summaries:
        total = sum(count for _, count in summary.blocks)
        weights = "offline" if summary.weights_available else "not on disk"
        print(f"{summary.name:<{width}}  {len(summary.blocks):>6}  {total:>13,}  {weights}")
    if skipped:
        print(
            f"\ntimm: {len(skipped)} more names, not summarised here (pass a filter, e.g. `skft backbones "
            "timm:convnext`, or one exact name for its blocks):"
        )
        for module, family in timm_families.items():
            print(f"  {module:<20} {len(family):>4}  e.g. {family[0]}" if family else f"  {module:<20} {0:>4}")


# -- the parser --------------------------------------------------------------------------------------


def _verbosity_options():
    """``-q/--quiet`` and ``-v/--verbose``, shared by the subcommands that report progress."""
    options = _Parser(add_help=False)
    group = options.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=0,
        default=1,
        help="no progress report, only the results",
    )
    group.add_argument(
        "-v", "--verbose", dest="verbosity", action="store_const", const=2, help="also each fit's epoch table"
    )
    return options


def _text_column_option(parser):
    parser.add_argument(
        "--text-column",
        default="text",
        metavar="NAME",
        help="text backbones: the CSV column of texts (default: %(default)s)",
    )


def build_parser():
    """The ``skft`` argument parser with its four subcommands.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = _Parser(prog="skft", description="Fine-tune pretrained image backbones with scikit-learn.")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, parser_class=_Parser)
    verbosity = _verbosity_options()

    demo = commands.add_parser(
        "demo",
        parents=[verbosity],
        help="offline demo on real MNIST digits",
        description=(
            "Grid-search the learning rate and batch size of a fine-tuned EfficientNet-Lite0 (ImageNet weights, "
            "shipped) on real MNIST digits, test the best model, compare the three modes, and write results.json "
            "with learning curves, a confusion matrix and a modes chart. Offline, a few minutes on CPU."
        ),
    )
    demo.add_argument("-o", "--output", default="skft-demo", metavar="DIR", help="output folder (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="a smaller run (about a minute) writing the same files")
    demo.set_defaults(run=_run_demo)

    fit = commands.add_parser(
        "fit",
        parents=[verbosity],
        help="fit a classifier on a folder of images or a CSV of texts",
        description=(
            "Fit a classifier on DATA_DIR (one subfolder of images per class; for a text backbone such as "
            "all-MiniLM-L6-v2, a CSV file with a text and a label column), grid-search with cross-validation, "
            "print the table of candidates and save the best model, refitted on all images."
        ),
    )
    fit.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        help=(
            "folder with one subfolder of images per class; for a text backbone, a CSV file with a text and a "
            "label column"
        ),
    )
    fit.add_argument("-o", "--output", required=True, metavar="MODEL", help="where to save the best model")
    fit.add_argument(
        "--no-card", action="store_true", help="do not write the model card (MODEL with .md) beside the model"
    )
    fit.add_argument("--backbone", default="efficientnet_lite0", help="see `skft backbones` (default: %(default)s)")
    fit.add_argument("--mode", choices=MODES, default="repurpose", help="what trains (default: %(default)s)")
    fit.add_argument(
        "--grid",
        action="append",
        type=_grid_entry,
        metavar="NAME=V1,V2",
        help="values to search for one estimator parameter, e.g. lr=1e-3,3e-3; repeat for more",
    )
    fit.add_argument("--cv", type=_integer_at_least(2), default=3, help="cross-validation folds (default: %(default)s)")
    fit.add_argument(
        "--image-size",
        type=_integer_at_least(1),
        metavar="N",
        help="side of the square images the network sees (default: the backbone's; 64 is fast)",
    )
    fit.add_argument("--epochs", type=_integer_at_least(1), metavar="N", help="training epochs (default: 10)")
    fit.add_argument("--seed", type=int, default=0, help="random_state of the estimator (default: %(default)s)")
    _text_column_option(fit)
    fit.add_argument(
        "--label-column",
        default="label",
        metavar="NAME",
        help="text backbones: the CSV column of labels (default: %(default)s)",
    )
    fit.set_defaults(run=_run_fit)

    predict = commands.add_parser(
        "predict",
        help="predict labels of image files or of texts in CSV files",
        description=(
            "Predict the labels of image files with a model saved by `skft fit`; folders are searched recursively. "
            "A text model reads the --text-column of CSV files and writes that column first. "
            "Writes CSV to stdout: path, label, probability."
        ),
    )
    predict.add_argument("model", metavar="MODEL", help="a model file written by `skft fit`")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders; CSV files for a text model")
    _text_column_option(predict)
    predict.set_defaults(run=_run_predict)

    backbones = commands.add_parser(
        "backbones",
        parents=[verbosity],
        help="list the backbones",
        description=(
            "List the registered backbones with block and parameter counts and whether their weights are on disk "
            "(usable offline); without FILTER, timm's models are counted per family. With the exact name of one "
            "backbone, print its blocks."
        ),
    )
    backbones.add_argument("filter", nargs="?", metavar="FILTER", help="only names containing FILTER")
    backbones.set_defaults(run=_run_backbones)
    for command in commands.choices.values():
        command.set_defaults(parser=command)  # for messages about its options
    return parser


def main(argv=None):
    """Run the ``skft`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``skft``; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        The exit status: 0, or 2 after a bad argument (reported in one line on stderr).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.run(args)
    except UsageError as error:
        prog = error.prog or f"skft {args.command}"
        print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_USAGE
    return 0
