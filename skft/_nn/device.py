"""Where a fit runs: resolving ``device`` and handing GPU memory back after a fit."""

import torch

from .accelerate import ACCELERATE


def resolve_device(device):
    """Turn ``"auto"`` into ``"cuda"`` when CUDA is available, else ``"cpu"``.

    ``"accelerate"`` resolves like ``"auto"``: outside a fit (prediction, a loaded model) a net runs
    on this process's device. In a process started by a multi-GPU launcher ``"cuda"`` is the GPU
    Accelerate assigned to the process.

    Parameters
    ----------
    device : str or torch.device

    Returns
    -------
    str
    """
    if device in ("auto", ACCELERATE):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:<n>' or 'accelerate'. Got {device!r} instead."
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here. Pass device='auto' or 'cpu'.")
    return str(resolved)


def release_cached_gpu_memory(device):
    """Hand the CUDA caching allocator's unused blocks back to the driver after a fit on ``device``.

    Parameters
    ----------
    device : str
        A resolved device; nothing happens off CUDA.
    """
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
