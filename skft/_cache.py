"""The frozen-prefix cache: compute the frozen blocks' output once per distinct image.

When the first ``k`` blocks of a network are frozen (no gradient, eval mode, no augmentation),
their output is a fixed function of the image. skft computes it once and trains the rest of the
network on the stored activations through the module seam (``forward(X, start_block=k)``).
Entries are keyed by content: the image's bytes and a *prefix key* made of the backbone,
its weights, the frozen depth and the preprocessing. They are reused across epochs, the
early-stopping split, cross-validation folds and grid points in one process, held in one
process-wide LRU store bounded by ``cache_bytes`` (:func:`set_config`), and optionally written
to ``cache_dir`` on disk, where parallel workers share them (atomic writes: a reader never sees
a half-written entry).
"""

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from ._atomic import atomic_write
from ._data import image_batches

DEFAULT_CACHE_BYTES = 2 * 1024**3
_FORMAT_VERSION = "1"


@dataclass
class CacheStats:
    """What the in-memory store holds and how it has been used.

    Parameters
    ----------
    bytes_used : int
    limit_bytes : int
    entries : int
    hits : int
        Activations served from memory or disk.
    misses : int
        Activations that had to be computed.
    disk_hits : int
        The part of ``hits`` read from ``cache_dir``.
    """

    bytes_used: int
    limit_bytes: int
    entries: int
    hits: int
    misses: int
    disk_hits: int


class ActivationStore:
    """A thread-safe LRU mapping from keys to tensors, bounded in bytes.

    Parameters
    ----------
    limit_bytes : int
    """

    def __init__(self, limit_bytes):
        self.limit_bytes = limit_bytes
        self._entries = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.disk_hits = 0

    def get(self, key):
        """Return the tensor stored under ``key`` (marking it recently used), or None."""
        with self._lock:
            tensor = self._entries.get(key)
            if tensor is not None:
                self._entries.move_to_end(key)
            return tensor

    def put(self, key, tensor):
        """Store ``tensor`` under ``key``, evicting the least recently used entries beyond the limit."""
        size = tensor.element_size() * tensor.nelement()
        if size > self.limit_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = tensor
            self._bytes += size
            while self._bytes > self.limit_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.element_size() * evicted.nelement()

    def resize(self, limit_bytes):
        """Change the limit, evicting at once what no longer fits."""
        with self._lock:
            self.limit_bytes = limit_bytes
            while self._bytes > self.limit_bytes and self._entries:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.element_size() * evicted.nelement()

    def clear(self):
        """Drop every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.hits = self.misses = self.disk_hits = 0

    def stats(self):
        """Return a :class:`CacheStats`."""
        with self._lock:
            return CacheStats(self._bytes, self.limit_bytes, len(self._entries), self.hits, self.misses,
                              self.disk_hits)


_STORE = ActivationStore(DEFAULT_CACHE_BYTES)


def set_config(*, cache_bytes=None):
    """Set process-wide options of skft.

    Parameters
    ----------
    cache_bytes : int, optional
        Memory bound of the frozen-prefix activation cache (default 2 GiB). ``0`` turns the
        in-memory cache off (an on-disk ``cache_dir`` still works).

    Examples
    --------
    >>> import skft
    >>> skft.set_config(cache_bytes=512 * 1024**2)
    >>> skft.get_config()["cache_bytes"]
    536870912
    >>> skft.set_config(cache_bytes=2 * 1024**3)
    """
    if cache_bytes is not None:
        if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int) or cache_bytes < 0:
            raise ValueError(f"cache_bytes must be a non-negative int (bytes). Got {cache_bytes!r} instead.")
        _STORE.resize(cache_bytes)


def get_config():
    """Return the process-wide options as a dict (``cache_bytes``).

    Returns
    -------
    dict
    """
    return {"cache_bytes": _STORE.limit_bytes}


def cache_info():
    """Report the frozen-prefix cache: bytes used, limit, entries, hits, misses.

    Returns
    -------
    CacheStats
    """
    return _STORE.stats()


def clear_cache():
    """Empty the in-memory frozen-prefix cache and reset its counters (files in ``cache_dir`` stay)."""
    _STORE.clear()


def image_digests(images):
    """One content digest per image (bytes, shape and dtype).

    Parameters
    ----------
    images : Tensor of shape (N, ...)

    Returns
    -------
    list of str
    """
    array = images.numpy()
    header = f"{array.dtype}{array.shape[1:]}".encode()
    return [hashlib.blake2b(header + image.tobytes(), digest_size=16).hexdigest() for image in array]


def prefix_key(*parts):
    """Digest of everything that makes the frozen prefix the function it is.

    Parameters
    ----------
    *parts : object
        Backbone identity, weights identity, frozen depth, preprocessing; their ``repr`` is hashed.

    Returns
    -------
    str
    """
    return hashlib.blake2b(repr((_FORMAT_VERSION,) + parts).encode(), digest_size=16).hexdigest()


class DiskStore:
    """Activations as one safetensors file per image under ``root/<prefix key>/``.

    Writes go to a temporary file in the same folder and are renamed into place, so parallel
    workers sharing the folder never read a half-written entry.

    Parameters
    ----------
    root : str or Path
    prefix : str
    """

    def __init__(self, root, prefix):
        self.folder = Path(root) / prefix

    def _path(self, digest):
        return self.folder / digest[:2] / f"{digest}.safetensors"

    def get(self, digest):
        """Return the stored activation, or None when absent or unreadable."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self._path(digest)
        if not path.is_file():
            return None
        try:
            return load_file(str(path))["activation"]
        except (OSError, KeyError, SafetensorError):
            return None

    def put(self, digest, tensor):
        """Write one activation atomically."""
        from safetensors.torch import save_file

        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as temporary:
            save_file({"activation": tensor.contiguous()}, temporary)


def frozen_activations(network, images, *, key, device, batch_size, cache_dir=None, num_workers=0):
    """The frozen prefix's output for every image, from the cache where possible.

    Images are read batch by batch (file paths are decoded once here, to identify them by
    content); only the images missing from memory and disk go through the frozen blocks.

    Parameters
    ----------
    network : FineTuneNetwork
        Its first ``n_frozen`` blocks are the frozen prefix.
    images : Tensor of shape (N, C, H, W) or LazyImages
    key : str
        The prefix key (see :func:`prefix_key`).
    device : str
        Where to compute missing activations.
    batch_size : int
        Images per forward pass.
    cache_dir : str or Path, optional
        Shared on-disk store consulted after memory and written for every computed entry.
    num_workers : int, default=0
        Processes decoding lazily loaded images.

    Returns
    -------
    Tensor of shape (N, ...)
        On the CPU, float32.
    """
    disk = DiskStore(cache_dir, key) if cache_dir is not None else None
    activations = []
    for batch in image_batches(images, batch_size, num_workers):
        digests = image_digests(batch)
        found = [_lookup(key, digest, disk) for digest in digests]
        missing = [index for index, tensor in enumerate(found) if tensor is None]
        _STORE.hits += len(found) - len(missing)
        _STORE.misses += len(missing)
        if missing:
            outputs = network.frozen_prefix(batch[missing].to(device)).float().cpu()
            for index, output in zip(missing, outputs):
                found[index] = output.clone()
                _STORE.put((key, digests[index]), found[index])
                if disk is not None:
                    disk.put(digests[index], found[index])
        activations.extend(found)
    return torch.stack(activations)


def _lookup(key, digest, disk):
    tensor = _STORE.get((key, digest))
    if tensor is None and disk is not None:
        tensor = disk.get(digest)
        if tensor is not None:
            _STORE.disk_hits += 1
            _STORE.put((key, digest), tensor)
    return tensor
