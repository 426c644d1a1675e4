"""Writing files atomically: a file skft writes is either the old one or the complete new one.

Every file skft writes (saved models, on-disk cache entries, checkpoints) goes through
:func:`atomic_write`: the content is written to a temporary file in the same directory, flushed to
disk, and renamed over the target with :func:`os.replace`, which is atomic on POSIX and Windows
when both paths are on one file system. A write interrupted at any point (an exception, Ctrl-C, a
full disk) leaves the previous file untouched, and parallel writers never share a temporary file.
"""

import contextlib
import os
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path to write to; on success, move it over ``path`` in one step.

    Parameters
    ----------
    path : str or path-like
        The file to create or replace. Its directory must exist.

    Yields
    ------
    str
        A new, empty file next to ``path``, unique to this call (process id and a random
        suffix). Write the whole content to it, e.g. ``safetensors.torch.save_file(tensors, tmp)``
        or ``torch.save(obj, tmp)``.

    Raises
    ------
    FileNotFoundError
        When the directory of ``path`` does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skft._atomic import atomic_write
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_write(target) as tmp:
    ...     _ = pathlib.Path(tmp).write_text("complete")
    >>> target.read_text()
    'complete'
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {str(path)!r}: its directory {str(path.parent)!r} does not exist. Create it first."
        )
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.open("xb").close()  # claim the name (exclusive create) with the usual permissions
    try:
        yield str(tmp)
        _flush_to_disk(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _flush_directory(path.parent)


def _flush_to_disk(file_path):
    with open(file_path, "rb+") as written:
        os.fsync(written.fileno())


def _flush_directory(directory):
    """Make the rename itself durable where the platform allows (POSIX); best effort elsewhere."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename has happened regardless
    finally:
        os.close(descriptor)
