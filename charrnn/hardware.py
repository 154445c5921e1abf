"""Where the work runs: device choice and CPU threads."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from charrnn.errors import ConfigError


def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) ..."): what a speed was
    measured on."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; others must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is available (try --device auto)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps: Apple MPS is not available (try --device auto)")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    return torch.device(name)


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for torch's kernels (None keeps torch's default)."""
    if threads is not None:
        torch.set_num_threads(threads)


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 arithmetic runs natively here (CPU: AVX-512 bf16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def sampling_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The weights' dtype for sampling at ``precision`` (None: fp32), or one clear error.

    The one check of sampling precision: the sampler and the stepper both ask here.
    """
    if precision == "fp32":
        return None
    if precision != "bf16":
        raise ConfigError(f"unknown precision {precision!r}: use fp32 or bf16")
    if not bf16_supported(device):
        raise ConfigError(f"--precision bf16: this {device.type} has no bf16 support; use fp32")
    return torch.bfloat16


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``--precision`` (None: plain fp32).

    ``auto`` is bf16 where the device does bf16 natively (about 1.6x the fp32 speed
    for a 2x512 LSTM on an AVX-512-bf16 CPU, with the same loss), else fp32.
    """
    if precision == "auto":
        return torch.bfloat16 if bf16_supported(device) else None
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("--precision fp16 needs a CUDA GPU (use bf16 on a CPU)")
    return torch.bfloat16 if precision == "bf16" else torch.float16
