"""Files skft writes get the permissions of any file the user creates (0o666 less the umask)."""

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from skft._nn import atomic as _atomic
from skft._nn.atomic import atomic_write


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    previous = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(previous)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_safetensors_file_gets_the_umask_permissions(tmp_path, umask, mask, expected):
    umask(mask)
    target = tmp_path / "model.safetensors"
    with atomic_write(target) as tmp:
        save_file({"x": torch.zeros(2)}, tmp)  # safetensors itself creates 0o600
    assert stat.S_IMODE(target.stat().st_mode) == expected


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_umask_without_proc_falls_back_and_restores_it(tmp_path, umask, monkeypatch):
    umask(0o027)
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    assert _atomic._current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # the fallback put the umask back
    target = tmp_path / "cache.safetensors"
    with atomic_write(target) as tmp:
        save_file({"x": torch.zeros(2)}, tmp)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_replacing_a_file_keeps_its_permissions(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    with atomic_write(target) as tmp:
        save_file({"x": torch.zeros(2)}, tmp)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
