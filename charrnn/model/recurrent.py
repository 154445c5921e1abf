"""GRU and tanh-RNN layers with a hand-written backward pass, for large layers on CPU.

On CPU, ``nn.LSTM`` runs oneDNN's fused RNN kernels, but ``nn.GRU`` and ``nn.RNN``
run a generic loop: every time step records a handful of autograd nodes, and the
backward pass does two small matrix products per step through MKL (slow on AMD
CPUs) — one of them, the weight gradient, with an inner dimension of only B (the
batch). Profiling a 2x512 GRU step showed 80 % of the time in those products.

Here each layer is two autograd functions:

- the input projections of the whole window are one large oneDNN product, and so
  are their gradients (:class:`_Projection`);
- the recurrence does one product per time step through weights packed once into
  oneDNN's layout (:class:`StepProduct`) and a few element-wise kernels writing into
  preallocated buffers; its backward keeps only ``dh @ W_hh`` in the time loop and
  computes the weight and bias gradients afterwards, as one product over all rows.

Measured gain (``python -m benchmarks.run``): 1.04-1.63x the stock modules on an
AVX-512 CPU, 0.83-0.92x on an AVX2 one at the same shapes; so which one runs is
measured on the machine, once per shape (:mod:`charrnn.model.kernels`). The maths is
exactly that of ``nn.GRU``/``nn.RNN`` (tests compare outputs and gradients in
float64, and run ``gradcheck``), and the parameters keep their names, so checkpoints
load either way. Autocast, CUDA and other devices use the stock modules.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import _VF, nn

from charrnn.model import kernels


def _grad_input(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad


_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
# Below this many weights the per-call cost of oneDNN outweighs its faster kernels.
_ONEDNN_MIN_WEIGHTS = 1 << 17


class StepProduct:
    """``a @ w.T (+ b)`` for many small ``a`` and one fixed ``w``: one product per time step.

    For float32, ``torch.mm`` goes through MKL, which on AMD CPUs runs well below
    oneDNN. Packing ``w`` once into oneDNN's blocked layout, rather than on every
    call, makes each step's product about 1.4x faster than ``addmm`` at 64x512x1536
    on the benchmark machine. Small weights stay with ``addmm``. With ``dtype``
    bfloat16 the product reads bf16 weights and returns float32.
    """

    def __init__(self, w: torch.Tensor, rows: int, dtype: torch.dtype | None = None) -> None:
        self.dtype = dtype or w.dtype
        self.w = w.to(self.dtype)
        self.packed: torch.Tensor | None = None
        onednn = _ONEDNN and w.device.type == "cpu" and w.dtype == torch.float32
        if onednn and (self.dtype != torch.float32 or w.numel() >= _ONEDNN_MIN_WEIGHTS):
            self.packed = torch.ops.mkldnn._reorder_linear_weight(self.w.contiguous(), rows)

    def __call__(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if self.dtype != a.dtype:
            a = a.to(self.dtype)
            if b is not None:
                b = b.to(self.dtype)
        if self.packed is not None:
            out = torch.ops.mkldnn._linear_pointwise(a, self.packed, b, "none", [], "")
        elif b is None:
            out = a.mm(self.w.t())
        else:
            out = torch.addmm(b, a, self.w.t())
        return out.float() if out.dtype == torch.bfloat16 else out


def _onednn(a: torch.Tensor) -> bool:
    return _ONEDNN and a.dtype == torch.float32 and a.device.type == "cpu"


def product(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ w.T (+ b)`` for one large product, through oneDNN where it can."""
    if _onednn(a):
        return torch.ops.mkldnn._linear_pointwise(a, w, b, "none", [], "")
    return F.linear(a, w, b)


def weight_grad(d_out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``d_out.T @ inputs`` summed over all rows: (R, O), (R, I) -> (O, I).

    oneDNN wants the summed dimension contiguous in its first operand, so the
    inputs are transposed once: a copy far cheaper than the product.
    """
    if _onednn(inputs):
        return product(inputs.t().contiguous(), d_out.t()).t().contiguous()
    return d_out.t().mm(inputs)


class _Projection(torch.autograd.Function):
    """``F.linear`` whose forward and backward products go through oneDNN."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        return product(x, w, b)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, w = ctx.saved_tensors
        grad = grad.contiguous()
        return product(grad, w.t()), weight_grad(grad, x), grad.sum(0)


class _GRURecurrence(torch.autograd.Function):
    """h_t from precomputed input gates gi (T, B, 3H) = x_t W_ih^T + b_ih.

    r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r * gh_n),
    h_t = (1 - z) * n + z * h_{t-1}, with gh = h_{t-1} W_hh^T + b_hh, as in ``nn.GRU``.
    """

    @staticmethod
    def forward(
        ctx: Any, gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        steps, batch, _ = gi.shape
        hidden = h0.shape[1]
        two = 2 * hidden
        # hs[0] is h0, hs[t + 1] is h_t: the previous state of every step is a slice.
        hs = gi.new_empty(steps + 1, batch, hidden)
        hs[0] = h0
        rz = gi.new_empty(steps, batch, two)  # σ outputs, kept for the backward pass
        n = gi.new_empty(steps, batch, hidden)  # tanh outputs
        gh_n = gi.new_empty(steps, batch, hidden)  # r multiplies this in n's pre-activation
        recurrent = StepProduct(w_hh, batch)
        for t in range(steps):
            h = hs[t]
            gh = recurrent(h, b_hh)  # (B, 3H)
            torch.add(gi[t, :, :two], gh[:, :two], out=rz[t])
            rz[t].sigmoid_()
            gh_n[t] = gh[:, two:]
            torch.addcmul(gi[t, :, two:], rz[t, :, :hidden], gh_n[t], out=n[t])
            n[t].tanh_()
            # h_t = n + z * (h_{t-1} - n)
            torch.addcmul(n[t], rz[t, :, hidden:], h - n[t], out=hs[t + 1])
        ctx.save_for_backward(hs, rz, n, gh_n, w_hh)
        return hs[1:], hs[steps].clone()

    @staticmethod
    def backward(
        ctx: Any, grad_out: torch.Tensor | None, grad_last: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        hs, rz, n, gh_n, w_hh = ctx.saved_tensors
        steps, batch, hidden = n.shape
        two = 2 * hidden
        grad_out = _grad_input(grad_out, n).contiguous()
        dh = _grad_input(grad_last, hs[0]).clone()
        dgi = torch.empty(steps, batch, 3 * hidden, dtype=n.dtype)  # input-gate gradients
        dgh = torch.empty_like(dgi)  # recurrent-gate gradients (differ in the n block)
        drz = torch.empty(batch, two, dtype=n.dtype)
        back = StepProduct(w_hh.t(), batch)  # dh @ W_hh
        for t in range(steps - 1, -1, -1):
            dh += grad_out[t]
            r, z = rz[t, :, :hidden], rz[t, :, hidden:]
            dhz = dh * z
            # n's pre-activation: d/dn of h_t is (1 - z).
            dn_pre = torch.ops.aten.tanh_backward(dh - dhz, n[t])
            dgi[t, :, two:] = dn_pre
            torch.mul(dn_pre, r, out=dgh[t, :, two:])
            torch.mul(dn_pre, gh_n[t], out=drz[:, :hidden])
            torch.mul(dh, hs[t] - n[t], out=drz[:, hidden:])
            torch.ops.aten.sigmoid_backward(drz, rz[t], grad_input=dgh[t, :, :two])
            dgi[t, :, :two] = dgh[t, :, :two]
            dh = back(dgh[t]).add_(dhz)
        flat = dgh.view(steps * batch, 3 * hidden)
        grad_w = weight_grad(flat, hs[:steps].reshape(steps * batch, hidden))
        return dgi, dh, grad_w, flat.sum(0)


class _TanhRecurrence(torch.autograd.Function):
    """h_t = tanh(gi_t + h_{t-1} W_hh^T + b_hh), as in ``nn.RNN``."""

    @staticmethod
    def forward(
        ctx: Any, gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        steps, batch, hidden = gi.shape
        hs = gi.new_empty(steps + 1, batch, hidden)
        hs[0] = h0
        pre = gi + b_hh  # the recurrent bias is not gated: add it once for all steps
        recurrent = StepProduct(w_hh, batch)
        for t in range(steps):
            torch.tanh(recurrent(hs[t]).add_(pre[t]), out=hs[t + 1])
        ctx.save_for_backward(hs, w_hh)
        return hs[1:], hs[steps].clone()

    @staticmethod
    def backward(
        ctx: Any, grad_out: torch.Tensor | None, grad_last: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        hs, w_hh = ctx.saved_tensors
        steps, batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        grad_out = _grad_input(grad_out, hs[1:]).contiguous()
        dh = _grad_input(grad_last, hs[0]).clone()
        dpre = torch.empty(steps, batch, hidden, dtype=hs.dtype)
        back = StepProduct(w_hh.t(), batch)
        for t in range(steps - 1, -1, -1):
            dh += grad_out[t]
            torch.ops.aten.tanh_backward(dh, hs[t + 1], grad_input=dpre[t])
            dh = back(dpre[t])
        flat = dpre.view(steps * batch, hidden)
        grad_w = weight_grad(flat, hs[:steps].reshape(steps * batch, hidden))
        return dpre, dh, grad_w, flat.sum(0)


_RECURRENCES: dict[str, type[torch.autograd.Function]] = {
    "GRU": _GRURecurrence,
    "RNN_TANH": _TanhRecurrence,
}


def _run_either(module: nn.RNNBase, x: torch.Tensor, fast: bool) -> tuple[torch.Tensor, Any]:
    """``module`` over ``x`` by the hand-written recurrence or PyTorch's own, for
    :func:`charrnn.model.kernels.hand_written_wins` to time."""
    if fast:
        return module._run_fast(x, None)  # type: ignore[operator]
    return super(_FastStack, module).forward(x)  # type: ignore[misc]


class _FastStack:
    """The shared forward of :class:`GRU` and :class:`RNN` (a mixin over nn.RNNBase)."""

    mode: str
    num_layers: int
    dropout: float
    training: bool

    def _fast_path(self, inputs: torch.Tensor, hx: torch.Tensor | None) -> bool:
        module: nn.RNNBase = self  # type: ignore[assignment]
        return (
            module.mode in _RECURRENCES
            and inputs.device.type == "cpu"
            and inputs.dtype == torch.float32
            and inputs.dim() == 3
            and module.batch_first
            and not module.bidirectional
            and module.bias
            and not torch.is_autocast_enabled("cpu")
            and (hx is None or hx.dtype == torch.float32)
            # Whichever is faster on this machine at this shape, measured once.
            and kernels.hand_written_wins(module, inputs.shape[0], _run_either)
        )

    def forward(
        self, input: torch.Tensor, hx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._fast_path(input, hx):
            return self._run_fast(input, hx)
        # Next in the method order: nn.GRU's or nn.RNN's own forward.
        return super().forward(input, hx)  # type: ignore[misc]

    def _run_fast(
        self, inputs: torch.Tensor, hx: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        module: nn.RNNBase = self  # type: ignore[assignment]
        batch = inputs.shape[0]
        if hx is None:
            hx = inputs.new_zeros(self.num_layers, batch, module.hidden_size)
        layer_in = inputs.transpose(0, 1)  # time-major: each step is one contiguous block
        finals = []
        for layer in range(self.num_layers):
            w_hh = getattr(module, f"weight_hh_l{layer}")
            out, last = _fast_layer(module, layer, layer_in, hx[layer], w_hh)
            finals.append(last)
            if self.dropout and self.training and layer < self.num_layers - 1:
                out = F.dropout(out, self.dropout, training=True)
            layer_in = out
        return layer_in.transpose(0, 1), torch.stack(finals)


def _fast_layer(
    module: nn.RNNBase, layer: int, inputs: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer of the fast recurrence: time-major (T, B, I) in, (T, B, H) and (B, H) out."""
    w_ih = getattr(module, f"weight_ih_l{layer}")
    b_ih = getattr(module, f"bias_ih_l{layer}")
    b_hh = getattr(module, f"bias_hh_l{layer}")
    steps, batch = inputs.shape[:2]
    rows = inputs.reshape(steps * batch, -1)  # all T steps in one product
    gi = _Projection.apply(rows, w_ih, b_ih).view(steps, batch, -1)
    return _RECURRENCES[module.mode].apply(gi, h0.contiguous(), w_hh, b_hh)


def run_layer(
    module: nn.RNNBase,
    layer: int,
    inputs: torch.Tensor,
    state: tuple[torch.Tensor, ...],
    w_hh: torch.Tensor,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Layer ``layer`` of a batch-first ``module`` on its own, with the recurrent
    matrix replaced by ``w_hh`` (weight drop passes a masked copy).

    It runs the same fused kernel as the whole module (oneDNN or cuDNN for the LSTM,
    the fast recurrence above for large GRU/RNN layers on CPU), so regularising
    between layers costs no speed. ``inputs`` (B, T, I); ``state`` holds (1, B, H)
    tensors, ``(h,)`` or ``(h, c)``; returns (B, T, H) and the new state.
    """
    if isinstance(module, _FastStack) and module._fast_path(inputs, state[0]):
        out, last = _fast_layer(module, layer, inputs.transpose(0, 1), state[0][0], w_hh)
        return out.transpose(0, 1), (last.unsqueeze(0),)
    weights = [
        getattr(module, f"weight_ih_l{layer}"),
        w_hh,
        getattr(module, f"bias_ih_l{layer}"),
        getattr(module, f"bias_hh_l{layer}"),
    ]
    # The functions nn.LSTM/GRU/RNN.forward call, given one layer's weights.
    flags = (True, 1, 0.0, module.training, False, True)  # biases, layers, dropout, train,
    # bidirectional, batch_first
    with warnings.catch_warnings():
        # cuDNN copies weights that are not one flat buffer: expected here, as weight
        # drop makes a new recurrent matrix for every batch anyway.
        warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
        if module.mode == "LSTM":
            out, h, c = _VF.lstm(inputs, state, weights, *flags)
            return out, (h, c)
        function = _VF.gru if module.mode == "GRU" else _VF.rnn_tanh
        out, h = function(inputs, state[0], weights, *flags)
    return out, (h,)


class GRU(_FastStack, nn.GRU):  # type: ignore[misc]  # forward: tensors only, no PackedSequence
    """``nn.GRU`` (batch_first) with the fast CPU recurrence."""


class RNN(_FastStack, nn.RNN):  # type: ignore[misc]  # forward: tensors only, no PackedSequence
    """``nn.RNN`` (tanh, batch_first) with the fast CPU recurrence."""
