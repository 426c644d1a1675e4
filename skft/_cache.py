"""The frozen-prefix cache: compute the frozen blocks' output once per distinct image.

When the first ``k`` blocks of a network are frozen (no gradient, eval mode, no augmentation),
their output is a fixed function of the image. skft computes it once and trains the rest of the
network on the stored activations through the module seam (``forward(X, start_block=k)``).
Entries are keyed by content: the image's bytes and a *prefix key*, the digest of the frozen
part as built (see :func:`prefix_key`), never a name. They are reused across epochs, the
early-stopping split, cross-validation folds and grid points in one process, held in one
process-wide LRU store bounded by ``cache_bytes`` (:func:`set_config`), and optionally written
to ``cache_dir`` on disk, where parallel workers share them (atomic writes: a reader never sees
a half-written entry). Every file records the key and image it was written for, and a reader
checks both, and the activation's shape and dtype, before using it.

Texts are cached the same way, per distinct text: the frozen prefix's hidden states at the text's
own token length ``(L_i, H)`` (the pooled vector when every block is frozen), keyed by the text's
digest (its content, the tokenizer's identity and ``max_length``) under the prefix key. Training
batches pad them again and rebuild the attention mask (:class:`skft._text.TextCollate`).
"""

import hashlib
import re
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from ._images.source import image_batches
from ._nn.atomic import atomic_write
from ._text import object_array, pad_token_ids, unpad_activations
from .backbones import UndescribableAttribute, module_digest

DEFAULT_CACHE_BYTES = 2 * 1024**3
#: Part of every key: bumped whenever what an entry holds, or how a key is made, changes.
CACHE_FORMAT_VERSION = "2"
#: Keys and image digests: 32 lowercase hex digits (a 16-byte blake2b), checked wherever they become paths.
_DIGEST = re.compile(r"[0-9a-f]{32}")


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

    def count(self, *, hits=0, misses=0, disk_hits=0):
        """Add to the usage counters."""
        with self._lock:
            self.hits += hits
            self.misses += misses
            self.disk_hits += disk_hits

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
            return CacheStats(self._bytes, self.limit_bytes, len(self._entries), self.hits, self.misses, self.disk_hits)


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


def clear_cache(cache_dir=None):
    """Empty the in-memory frozen-prefix cache and reset its counters; with ``cache_dir``, that too.

    Parameters
    ----------
    cache_dir : str or path-like, optional
        A folder given as ``cache_dir`` to estimators: the activation files skft wrote there
        (``<cache_dir>/<32 hex digits>/<2 hex digits>/<32 hex digits>.safetensors``) are deleted,
        and the folders they leave empty. Nothing else in the folder is touched. Without it, files
        on disk stay.

    Examples
    --------
    >>> import skft, tempfile
    >>> skft.clear_cache(cache_dir=tempfile.mkdtemp())
    """
    _STORE.clear()
    if cache_dir is not None:
        _clear_disk(Path(cache_dir))


def _clear_disk(root):
    if not root.is_dir():
        return
    for key_folder in root.iterdir():
        if not (key_folder.is_dir() and not key_folder.is_symlink() and _DIGEST.fullmatch(key_folder.name)):
            continue
        for shard in key_folder.iterdir():
            if not (shard.is_dir() and not shard.is_symlink() and re.fullmatch(r"[0-9a-f]{2}", shard.name)):
                continue
            for entry in shard.iterdir():
                if entry.is_file() and not entry.is_symlink() and _is_entry_name(entry.name):
                    entry.unlink(missing_ok=True)
            _remove_if_empty(shard)
        _remove_if_empty(key_folder)


def _is_entry_name(name):
    stem = name.removesuffix(".safetensors")
    return stem != name and _DIGEST.fullmatch(stem) is not None


def _remove_if_empty(folder):
    try:
        folder.rmdir()
    except OSError:  # not empty (another writer, or files that are not ours)
        pass


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


def prefix_key(network, precision):
    """Digest of the frozen prefix as built: everything that makes it the function it is.

    It covers the normaliser (image size, mean, std), every frozen block's structure and tensors
    (see :mod:`skft.backbones._digest`), the pooling when every block is frozen (the prefix then
    ends with it), the precision and :data:`CACHE_FORMAT_VERSION`. No backbone name enters it
    (only the modules' paths in the network): two registrations under one name that build
    different networks get different keys, and two names for one network share entries.

    A prefix holding an attribute the digest cannot describe (an arbitrary object) has no key: it
    is not cached (computed, correctly, every time), with a warning naming the module and attribute.

    Parameters
    ----------
    network : FineTuneNetwork
    precision : str
        The precision the prefix runs in (``"fp32"``, ``"bf16"``, ``"fp16"``).

    Returns
    -------
    str or None
        32 lowercase hex digits; None when the prefix cannot be described.
    """
    modules = [("normalizer", network.normalizer)]
    frozen = list(network.backbone.named_children())[: network.n_frozen]
    modules += [(f"backbone.{name}", block) for name, block in frozen]
    if network.cache_start > len(network.backbone):
        modules.append(("pool", network.pool))
    try:
        digest = module_digest(modules)
    except UndescribableAttribute as error:
        warnings.warn(f"The frozen prefix's activations are not cached: {error}.", UserWarning, stacklevel=3)
        return None
    parts = (CACHE_FORMAT_VERSION, precision, network.cache_start, digest)
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def check_digest(value, what):
    """Refuse anything but 32 lowercase hex digits before it becomes part of a path.

    Parameters
    ----------
    value : object
    what : str
        Named in the message.

    Raises
    ------
    ValueError
    """
    if not isinstance(value, str) or _DIGEST.fullmatch(value) is None:
        raise ValueError(f"{what} must be 32 lowercase hex digits. Got {value!r} instead.")


class DiskStore:
    """Activations as one safetensors file per image under ``root/<prefix key>/``.

    Writes go to a temporary file in the same folder and are renamed into place, so parallel
    workers sharing the folder never read a half-written entry. Each file's metadata records the
    key and image digest it was written for; :meth:`get` uses a file only when both match and the
    activation has the expected shape and dtype, so a renamed, copied or foreign file is a miss.

    Parameters
    ----------
    root : str or Path
    prefix : str
        A prefix key: 32 lowercase hex digits (anything else is refused before it becomes a path).
    shape : tuple of int, optional
        The shape of every activation (images); ``None`` when it differs per entry (texts: each
        :meth:`get` then says the shape it expects).
    """

    def __init__(self, root, prefix, shape=None):
        check_digest(prefix, "the prefix key")
        self.folder = Path(root) / prefix
        self.prefix = prefix
        self.shape = None if shape is None else tuple(shape)

    def _path(self, digest):
        check_digest(digest, "an image digest")
        return self.folder / digest[:2] / f"{digest}.safetensors"

    def get(self, digest, shape=None):
        """Return the stored activation, or None when absent, unreadable, written for something else or of
        another shape than ``shape`` (default: the store's ``shape``)."""
        from safetensors import SafetensorError, safe_open

        path = self._path(digest)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                if handle.metadata() != self._metadata(digest):
                    return None
                tensor = handle.get_tensor("activation")
        except (OSError, KeyError, SafetensorError):
            return None
        expected = self.shape if shape is None else tuple(shape)
        return tensor if tensor.dtype == torch.float32 and tuple(tensor.shape) == expected else None

    def put(self, digest, tensor):
        """Write one activation atomically."""
        from safetensors.torch import save_file

        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as temporary:
            save_file({"activation": tensor.contiguous()}, temporary, metadata=self._metadata(digest))

    def _metadata(self, digest):
        return {"format": CACHE_FORMAT_VERSION, "prefix_key": self.prefix, "image": digest}


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
        The prefix key (see :func:`prefix_key`): 32 lowercase hex digits.
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
    check_digest(key, "the prefix key")
    disk = DiskStore(cache_dir, key, _activation_shape(network, key, device)) if cache_dir is not None else None
    activations = []
    for batch in image_batches(images, batch_size, num_workers):
        digests = image_digests(batch)
        found = [_lookup(key, digest, disk) for digest in digests]
        missing = [index for index, tensor in enumerate(found) if tensor is None]
        _STORE.count(hits=len(found) - len(missing), misses=len(missing))
        if missing:
            outputs = network.frozen_prefix(batch[missing].to(device)).float().cpu()
            for index, output in zip(missing, outputs):
                found[index] = _remember(key, digests[index], output, disk)
        activations.extend(found)
    return torch.stack(activations)


def frozen_text_activations(network, texts, *, key, device, batch_size, cache_dir=None):
    """The frozen prefix's output for every text, from the cache where possible.

    Texts missing from memory and disk go through the frozen blocks in batches of similar
    lengths, each padded to its own longest text; what is stored is each text's output cut back
    to its own length.

    Parameters
    ----------
    network : FineTuneNetwork
        A text network; its first ``n_frozen`` blocks are the frozen prefix.
    texts : skft._text.TokenizedTexts
    key : str
        The prefix key (see :func:`prefix_key`).
    device : str
    batch_size : int
        Texts per forward pass.
    cache_dir : str or Path, optional
        Shared on-disk store consulted after memory and written for every computed entry.

    Returns
    -------
    Tensor of shape (N, H), or numpy.ndarray of dtype object
        Pooled features when every block is frozen; otherwise one ``(L_i, H)`` float32 CPU
        tensor per text.
    """
    check_digest(key, "the prefix key")
    pooled = network.cache_start > len(network.backbone)
    width = _activation_shape(network, key, device)
    disk = DiskStore(cache_dir, key) if cache_dir is not None else None
    lengths = [len(ids) for ids in texts.ids]
    found = [
        _lookup(key, digest, disk, width if pooled else (length, *width))
        for digest, length in zip(texts.digests, lengths)
    ]
    missing = sorted((index for index, tensor in enumerate(found) if tensor is None), key=lambda i: lengths[i])
    _STORE.count(hits=len(found) - len(missing), misses=len(missing))
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        input_ids, attention_mask = pad_token_ids([texts.ids[index] for index in chunk], texts.pad_token_id)
        outputs = network.frozen_prefix((input_ids.to(device), attention_mask.to(device)))
        per_text = outputs.cpu() if pooled else unpad_activations(outputs.hidden.cpu(), outputs.attention_mask.cpu())
        for index, output in zip(chunk, per_text):
            found[index] = _remember(key, texts.digests[index], output, disk)
    return torch.stack(found) if pooled else object_array(found)


def _remember(key, digest, output, disk):
    """Store one computed activation in memory (and on disk) and return the stored tensor."""
    tensor = output.clone()
    _STORE.put((key, digest), tensor)
    if disk is not None:
        disk.put(digest, tensor)
    return tensor


def _lookup(key, digest, disk, shape=None):
    tensor = _STORE.get((key, digest))
    if tensor is None and disk is not None:
        tensor = disk.get(digest, shape)
        if tensor is not None:
            _STORE.count(disk_hits=1)
            _STORE.put((key, digest), tensor)
    return tensor


_SHAPES = {}
_SHAPES_LOCK = threading.Lock()


def _activation_shape(network, key, device):
    """The shape of one activation under ``key``: one blank input through the prefix, once per key.

    For text, the shape after the token axis (the hidden size ``(H,)``), which is also a pooled
    vector's shape.
    """
    with _SHAPES_LOCK:
        shape = _SHAPES.get(key)
    if shape is None:
        output = network.frozen_prefix(network.normalizer.probe(device))
        shape = tuple(output.hidden.shape[2:] if isinstance(output, tuple) else output.shape[1:])
        with _SHAPES_LOCK:
            _SHAPES[key] = shape
    return shape
