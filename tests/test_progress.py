"""The progress report: bars on a terminal, whole lines elsewhere, nothing at verbose=0."""

import io
from types import SimpleNamespace

import pytest

from skft.cli import progress as _progress
from skft.cli.progress import FitProgress, fit_progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class FakeNet(SimpleNamespace):
    """What FitProgress reads of a skorch net: max_epochs and history rows."""

    def __init__(self, max_epochs):
        super().__init__(max_epochs=max_epochs, history=[])


def run_fits(stream, n_fits, epochs, clock=None, seconds_per_epoch=0.0, **kwargs):
    callback = FitProgress()
    with fit_progress(n_fits, "search", stream=stream, **kwargs):
        for _ in range(n_fits):
            net = FakeNet(epochs)
            callback.on_train_begin(net)
            for epoch in range(epochs):
                if clock is not None:
                    clock[0] += seconds_per_epoch
                net.history.append({"epoch": epoch + 1, "train_loss": 1.0 / (epoch + 1), "valid_acc": 0.5})
                callback.on_epoch_end(net)
            callback.on_train_end(net)
    return stream.getvalue()


@pytest.fixture
def clock(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: now[0])
    return now


def test_log_gets_one_whole_line_per_quick_fit(clock):
    text = run_fits(io.StringIO(), 3, 5, clock, seconds_per_epoch=1.0)
    assert "\r" not in text and "\x1b" not in text
    assert text.splitlines() == [
        f"search: fit {k}/3, trained 5 epochs in 5.0 s, train_loss 0.200, valid_acc 0.500" for k in (1, 2, 3)
    ]


def test_log_of_a_long_fit_gets_a_line_at_most_every_ten_seconds(clock):
    text = run_fits(io.StringIO(), 1, 10, clock, seconds_per_epoch=4.0)
    assert text.splitlines() == [
        "search: fit 1/1, epoch 3/10: train_loss 0.333, valid_acc 0.500",
        "search: fit 1/1, epoch 6/10: train_loss 0.167, valid_acc 0.500",
        "search: fit 1/1, epoch 9/10: train_loss 0.111, valid_acc 0.500",
        "search: fit 1/1, trained 10 epochs in 40.0 s, train_loss 0.100, valid_acc 0.500",
    ]


def test_terminal_gets_bars():
    text = run_fits(FakeTerminal(), 2, 3)
    assert "\r" in text and "search: 100%" in text and "epochs:" in text


@pytest.mark.parametrize("stream", [io.StringIO(), FakeTerminal()])
def test_verbose_zero_is_silent(stream):
    assert run_fits(stream, 2, 3, verbose=0) == ""


def test_outside_a_report_the_callback_does_nothing():
    net = FakeNet(1)
    FitProgress().on_train_begin(net)
    net.history.append({"epoch": 1, "train_loss": 0.5})
    FitProgress().on_epoch_end(net)
    FitProgress().on_train_end(net)
