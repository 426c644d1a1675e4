"""Writing files atomically: a file skft writes is either the old one or the complete new one.

Every file skft writes (saved models, on-disk cache entries, checkpoints) goes through
:func:`atomic_write`: the content is written to a temporary file in the same directory, flushed to
disk, given the permissions of the file it replaces (or, for a new file, those any file the user
creates gets: ``0o666`` less the umask; writers such as safetensors' ``save_file`` create theirs
``0o600``, which other users of a shared cache directory could not read), and renamed over the
target with :func:`os.replace`, which is atomic on POSIX and Windows when both paths are on one
file system. A write interrupted at any point (an exception, Ctrl-C, a
full disk) leaves the previous file untouched, and parallel writers never share a temporary file.
"""

import contextlib
import os
import stat
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
    >>> from skft._nn.atomic import atomic_write
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
    tmp.open("xb").close()  # claim the name (exclusive create)
    try:
        yield str(tmp)
        os.chmod(tmp, _mode_for(path))
        _flush_to_disk(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _flush_directory(path.parent)


def _mode_for(path):
    """The permissions of the file being replaced; for a new file, ``0o666`` less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


def _current_umask():
    """The process's umask, read without changing it where the platform allows.

    Linux (4.7 and later) reports it in ``/proc/self/status``; reading it there is safe while other
    threads create files. Elsewhere the only way is to set a umask and restore it at once
    (:func:`os.umask` returns the previous one): process-global, so a file another thread creates in
    that instant could get mode ``0o666 & ~0o077`` -- stricter than asked, never looser.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    previous = os.umask(0o077)
    os.umask(previous)
    return previous


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
