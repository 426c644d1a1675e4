"""Finding the images of a data set stored as one folder per class."""

import os

import numpy as np

#: File name endings (compared in lower case) that :func:`load_image_folder` takes for images.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


def load_image_folder(root, extensions=IMAGE_EXTENSIONS):
    """List the images of a data set laid out as ``root/<class>/<image>``.

    Every sub-folder of ``root`` is a class; its images (searched in its sub-folders too) are the
    examples of that class. A class folder may be a symbolic link; links to folders inside a class
    folder are not followed (a link back up the tree would otherwise list images again and again).
    Hidden files and folders (names starting with ``.``) and files with other endings are skipped.
    No image is opened: the estimators read the files batch by batch.

    Parameters
    ----------
    root : str or path-like
        The folder that holds one folder per class.
    extensions : tuple of str, default=IMAGE_EXTENSIONS
        File name endings to take, compared in lower case.

    Returns
    -------
    paths : ndarray of str, shape (N,)
        Image paths (``root`` joined with the relative path), sorted by class, then path.
    labels : ndarray of str, shape (N,)
        The class folder name of each image.

    Examples
    --------
    >>> from skft import FineTunedClassifier, load_image_folder
    >>> paths, labels = load_image_folder("photos/")  # doctest: +SKIP
    >>> FineTunedClassifier().fit(paths, labels)  # doctest: +SKIP
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"root={root!r} is not a folder. Pass the folder that holds one folder per class.")
    suffixes = tuple(extension.lower() for extension in extensions)
    paths, labels = [], []
    for label in _visible(sorted(entry.name for entry in os.scandir(root) if entry.is_dir())):
        found = sorted(_image_files(os.path.join(root, label), suffixes))
        paths += found
        labels += [label] * len(found)
    if not paths:
        raise ValueError(
            f"root={root!r} holds no images in class folders: expected root/<class>/<image> with endings "
            f"{list(suffixes)}."
        )
    return np.array(paths), np.array(labels)


def _image_files(folder, suffixes):
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = _visible(subfolders)
        yield from (os.path.join(directory, name) for name in _visible(files) if name.lower().endswith(suffixes))


def _visible(names):
    return [name for name in names if not name.startswith(".")]
