"""The pretrained base a changes-only model file leaves out, and the digests that prove it at load.

A model file saved without ``full=True`` stores what the fit changed: the head, the blocks that
trained, and in blocks that train only some tensors (LoRA adapters, prompt vectors) only those. The
rest -- the frozen blocks, the base weights under the adapters, the encoder around the prompt vectors
-- is the *base*, rebuilt at load from the backbone's weights. :func:`base_digests` gives one digest
per block of the base tensors it holds, taken from the network as the fit built it, before any
training (so the weights a fit started from, never those found on disk later). Loading rebuilds the
network, takes the same digests and refuses the file when one differs.
"""

from ..backbones._digest import own_tensors, tensor_values_digest


def base_digests(network, blocks=None):
    """Per block, the digest of the tensors a changes-only model file leaves out of it.

    Every frozen block is left out whole; in a block after the frozen prefix that trains only some
    tensors (``network.trains_only``: LoRA adapters, prompt vectors) the others are; a block that
    trains in full is stored in full and has no entry.

    Parameters
    ----------
    network : FineTuneNetwork
    blocks : collection of str, optional
        Only these blocks (default: all).

    Returns
    -------
    dict of str to str
        Block name to 32 lowercase hex digits.
    """
    digests = {}
    for index, (name, block) in enumerate(network.backbone.named_children()):
        frozen = index < network.n_frozen
        if (not frozen and network.trains_only is None) or (blocks is not None and name not in blocks):
            continue
        base = [
            (path, module)
            for path, module in block.named_modules()
            if frozen or not _trains(network.trains_only, path, module)
        ]
        digests[name] = tensor_values_digest(base)
    return digests


def differing_blocks(recorded, network):
    """The blocks of ``network`` whose base tensors differ from a record of :func:`base_digests`.

    Parameters
    ----------
    recorded : dict of str to str
    network : FineTuneNetwork

    Returns
    -------
    list of str
        Names of recorded blocks, in order; empty when the base is the recorded one. (Blocks the
        record leaves out are stored in the file in full.)
    """
    found = base_digests(network, recorded)
    return [name for name in recorded if found.get(name) != recorded[name]]


def _trains(trains_only, path, module):
    """Whether ``module`` (at ``path`` in its block) holds a tensor that trains (an adapter, prompt vectors)."""
    return any(trains_only(f"{path}.{name}" if path else name) for name, _ in own_tensors(module))


def kept_base(network, recorded):
    """The part of a fit's record that still holds: what a changes-only file of ``network`` may leave out.

    A frozen block is kept while its tensors are those recorded (a continued fit may have trained it
    since: it is then stored in full). A block after the frozen prefix that trains only some tensors
    is kept as recorded: its other tensors never train (LoRA's base weights hold the merged adapters
    after a fit, and the file stores the adapters alone).

    Parameters
    ----------
    network : FineTuneNetwork
    recorded : dict of str to str
        From :func:`base_digests` when the fit started.

    Returns
    -------
    dict of str to str
    """
    names = [name for name, _ in network.backbone.named_children()]
    frozen, after = names[: network.n_frozen], names[network.n_frozen :]
    current = base_digests(network, [name for name in frozen if name in recorded])
    partly_trained = set(after) if network.trains_only is not None else set()
    return {name: digest for name, digest in recorded.items() if current.get(name) == digest or name in partly_trained}
