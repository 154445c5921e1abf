"""The fast GRU/RNN recurrences compute exactly what nn.GRU/nn.RNN compute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from charrnn.model import kernels, recurrent
from charrnn.model.recurrent import GRU, RNN

PAIRS = [(GRU, nn.GRU), (RNN, nn.RNN)]


@pytest.fixture(autouse=True)
def fast_path_at_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests use tiny layers; take the fast path anyway."""
    monkeypatch.setattr(kernels, "hand_written_wins", lambda *args: True)


def _twins(fast_cls: type, stock_cls: type, layers: int, dropout: float = 0.0):
    torch.manual_seed(0)
    stock = stock_cls(5, 7, num_layers=layers, batch_first=True, dropout=dropout).double()
    fast = fast_cls(5, 7, num_layers=layers, batch_first=True, dropout=dropout).double()
    fast.load_state_dict(stock.state_dict())
    return fast, stock


@pytest.mark.parametrize(("fast_cls", "stock_cls"), PAIRS)
@pytest.mark.parametrize("layers", [1, 3])
def test_outputs_and_gradients_match_stock(fast_cls: type, stock_cls: type, layers: int) -> None:
    fast, stock = _twins(fast_cls, stock_cls, layers)
    x = torch.randn(4, 6, 5, dtype=torch.float64)
    h0 = torch.randn(layers, 4, 7, dtype=torch.float64)
    results = []
    for module in (fast, stock):
        xi, hi = x.clone().requires_grad_(), h0.clone().requires_grad_()
        # The fast path is float32 only; compare in float64 through the functions directly.
        out, last = module._run_fast(xi, hi) if module is fast else module(xi, hi)
        # Weight both outputs so the gradient reaches every step through both paths.
        (out.sin().sum() + (last * 3).cos().sum()).backward()
        grads = [p.grad for p in module.parameters()]
        results.append((out, last, xi.grad, hi.grad, grads))
    (o1, l1, gx1, gh1, gp1), (o2, l2, gx2, gh2, gp2) = results
    torch.testing.assert_close(o1, o2)
    torch.testing.assert_close(l1, l2)
    torch.testing.assert_close(gx1, gx2)
    torch.testing.assert_close(gh1, gh2)
    for a, b in zip(gp1, gp2, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("fast_cls", "stock_cls"), PAIRS)
def test_float32_forward_takes_the_fast_path(fast_cls: type, stock_cls: type) -> None:
    fast, stock = _twins(fast_cls, stock_cls, 2)
    fast, stock = fast.float(), stock.float()
    x = torch.randn(3, 8, 5)
    assert fast._fast_path(x, None)
    out, last = fast(x)
    ref, ref_last = stock(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last, ref_last, atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fast._fast_path(x, None)  # autocast runs the stock kernels


def test_gradcheck_gru_recurrence() -> None:
    from charrnn.model.recurrent import _GRURecurrence, _TanhRecurrence

    torch.manual_seed(1)
    for fn, gates in ((_GRURecurrence, 3), (_TanhRecurrence, 1)):
        gi = torch.randn(3, 2, gates * 4, dtype=torch.float64, requires_grad=True)
        h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
        w = torch.randn(gates * 4, 4, dtype=torch.float64, requires_grad=True)
        b = torch.randn(gates * 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(fn.apply, (gi, h0, w, b))


def test_dropout_between_layers_only_in_training() -> None:
    fast, _ = _twins(GRU, nn.GRU, 2, dropout=0.5)
    fast = fast.float()
    x = torch.randn(2, 5, 5)
    fast.eval()
    a, _ = fast(x)
    b, _ = fast(x)
    torch.testing.assert_close(a, b)
    fast.train()
    torch.manual_seed(3)
    c, _ = fast(x)
    assert not torch.allclose(a, c)


def test_the_faster_recurrence_is_measured_once_per_shape_and_remembered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Before: a batch x hidden threshold tuned on one CPU chose the hand-written loop,
    # which ran 0.83-0.92x PyTorch's own on another.
    monkeypatch.undo()  # the real choice, not the fixture's
    monkeypatch.setenv("CHARRNN_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_chosen", {})
    monkeypatch.setattr(kernels, "MEASURE_MIN_BATCH_X_HIDDEN", 64)
    outcomes = iter([True, False])
    measured: list[str] = []

    def measure(module: nn.RNNBase, batch: int, run: object) -> bool:
        measured.append(kernels.shape_key(module, batch))
        return next(outcomes)

    monkeypatch.setattr(kernels, "measure", measure)
    fast, _ = _twins(GRU, nn.GRU, 1)
    fast = fast.float()
    assert not fast._fast_path(torch.randn(4, 3, 5), None)  # 4 x 7 < 64: never measured
    assert measured == []
    assert fast._fast_path(torch.randn(10, 3, 5), None)  # measured: hand-written wins
    assert not fast._fast_path(torch.randn(12, 3, 5), None)  # another shape: stock wins
    assert fast._fast_path(torch.randn(10, 9, 5), None)  # the first shape, any window
    assert len(measured) == 2
    # A new process on this machine reads the choices back instead of measuring.
    monkeypatch.setattr(kernels, "_chosen", {})
    assert fast._fast_path(torch.randn(10, 3, 5), None)
    assert not fast._fast_path(torch.randn(12, 3, 5), None)
    assert len(measured) == 2
    remembered = json.loads((tmp_path / kernels.CACHE_NAME).read_text())
    assert set(remembered[kernels.machine_key()]) == set(measured)


def test_measuring_times_both_paths_and_leaves_the_random_stream_alone() -> None:
    fast, _ = _twins(GRU, nn.GRU, 2)
    fast = fast.float()
    before = [p.detach().clone() for p in fast.parameters()]
    state = torch.get_rng_state()
    calls: list[bool] = []

    def run(module: nn.RNNBase, x: torch.Tensor, hand_written: bool):  # type: ignore[no-untyped-def]
        calls.append(hand_written)
        return recurrent._run_either(module, x, hand_written)

    with torch.inference_mode():  # asked while sampling, or under no_grad in an evaluation
        assert kernels.measure(fast, 16, run) in (True, False)
    assert calls.count(True) == calls.count(False) == kernels.REPEATS + 1
    assert torch.equal(torch.get_rng_state(), state)
    assert all(p.grad is None for p in fast.parameters()), "timed on a copy"
    for a, b in zip(before, fast.parameters(), strict=True):
        assert torch.equal(a, b)
