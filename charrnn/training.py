"""Truncated backprop through time: the training loop, its budget and its checkpoints.

The loop never prints: it reports through a :class:`Reporter` (the CLI's Rich
display, JSON lines, or nothing), so the library is usable on its own::

    from charrnn import RunConfig, ModelConfig, TrainConfig, DataConfig, train
    config = RunConfig(DataConfig("input.txt"), ModelConfig(), TrainConfig())
    summary = train(config, Path("runs/x"))

Each step feeds window k of every stream, carries the recurrent state into window
k + 1 and detaches it there (see :mod:`charrnn.data`), so the model sees long
context while gradients flow back ``seq_len`` steps. Everything that decides what
happens next — weights, optimizer, step, carried state, random-generator state — is
in the checkpoint, so a resumed run continues exactly as if it had never stopped.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from charrnn import __version__
from charrnn.checkpoint import load_checkpoint, model_from_record, save_checkpoint
from charrnn.config import RunConfig, TrainConfig
from charrnn.corpora import PREFIX, resolve_corpus
from charrnn.corpus import Corpus, encode_validation_file, load_corpus, split_ids
from charrnn.data import StreamBatches, ValidationWindows
from charrnn.distributed import Group, require_all, session
from charrnn.errors import (
    CharRNNError,
    CheckpointError,
    ConfigError,
    CorpusError,
    TrainingDiverged,
    TrainingInterrupted,
)
from charrnn.hardware import bf16_supported, select_device, set_threads
from charrnn.model import CharRNN, State, count_parameters, detach_state
from charrnn.rundir import RunDir
from charrnn.sample import SampleSettings, generate
from charrnn.vocab import Vocab

LN2 = math.log(2.0)
_REPORT_INTERVAL_S = 0.2
MAX_PARAMETERS = 2**31  # 8 GB of fp32 weights, before gradients and optimizer state


# -- what the loop reports ----------------------------------------------------------


@dataclass(frozen=True)
class RunStart:
    """Facts about a run, reported once before the first step."""

    run_dir: Path
    corpus: str
    vocab_size: int
    parameters: int
    train_chars: int
    val_chars: int
    windows_per_epoch: int
    device: str
    start_step: int
    total_steps: int | None


@dataclass(frozen=True)
class Progress:
    """The loop's state, reported a few times a second."""

    step: int
    epoch: float
    fraction: float
    train_loss: float
    lr: float
    chars_per_s: float
    elapsed_s: float
    val_bpc: float | None


@dataclass(frozen=True)
class Evaluation:
    """One validation pass: the line written to ``metrics.jsonl`` plus a sample."""

    step: int
    epoch: float
    chars_seen: int
    elapsed_s: float
    lr: float
    train_loss: float
    val_loss: float
    val_bpc: float
    chars_per_s: float
    is_best: bool
    sample: str

    def record(self) -> dict[str, Any]:
        """The metrics line (everything but the sample text)."""
        fields = asdict(self)
        fields.pop("sample")
        return fields


@dataclass(frozen=True)
class Summary:
    """How a run ended."""

    run_dir: Path
    step: int
    chars_seen: int
    elapsed_s: float
    best_val_loss: float
    last_val_loss: float
    stopped_by: str
    bad_steps: int

    @property
    def best_val_bpc(self) -> float:
        return self.best_val_loss / LN2


class Reporter(Protocol):
    """Receives what the loop has to say; every method may do nothing."""

    def start(self, info: RunStart) -> None: ...
    def progress(self, progress: Progress) -> None: ...
    def evaluated(self, evaluation: Evaluation) -> None: ...
    def finish(self, summary: Summary) -> None: ...


class SilentReporter:
    """A reporter that ignores everything."""

    def start(self, info: RunStart) -> None:
        pass

    def progress(self, progress: Progress) -> None:
        pass

    def evaluated(self, evaluation: Evaluation) -> None:
        pass

    def finish(self, summary: Summary) -> None:
        pass


# -- schedule and budget --------------------------------------------------------------


def learning_rate(config: TrainConfig, fraction: float) -> float:
    """The learning rate when ``fraction`` of the budget is used: warm-up, then decay.

    Linear warm-up over the first ``warmup`` of the budget; then ``cosine`` decays to
    ``min_lr_frac * lr``, ``step`` multiplies by 0.3 at half and by 0.1 at three
    quarters of the budget, and ``constant`` keeps ``lr``.
    """
    fraction = min(max(fraction, 0.0), 1.0)
    if config.warmup > 0 and fraction < config.warmup:
        return config.lr * fraction / config.warmup
    progress = (fraction - config.warmup) / max(1.0 - config.warmup, 1e-12)
    if config.schedule == "cosine":
        floor = config.lr * config.min_lr_frac
        return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return config.lr * (1.0 if progress < 0.5 else 0.3 if progress < 0.75 else 0.1)
    return config.lr


def total_steps(config: TrainConfig, windows_per_epoch: int) -> int | None:
    """Steps the budget allows, when it is counted in steps or epochs (not time)."""
    limits = []
    if config.steps is not None:
        limits.append(config.steps)
    if config.epochs is not None:
        limits.append(max(1, math.ceil(config.epochs * windows_per_epoch)))
    return min(limits) if limits else None


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
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


# -- Ctrl-C -------------------------------------------------------------------------


class StopRequest:
    """Set by the first Ctrl-C (or by a caller); the loop checks it between steps."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested


@contextmanager
def graceful_interrupt(stop: StopRequest) -> Iterator[None]:
    """Turn the first SIGINT into a stop request, so the loop can save between steps.

    A second Ctrl-C (more than two seconds later) interrupts at once; the last
    checkpoint on disk stays intact.
    Only the main thread may install signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    first_at: list[float] = []

    def handler(signum: int, frame: object) -> None:
        # torchrun forwards the terminal's Ctrl-C to workers that already got it: a
        # repeat within two seconds is the same Ctrl-C, not a second one.
        if stop.requested and time.monotonic() - first_at[0] > 2.0:
            raise KeyboardInterrupt
        if not stop.requested:
            first_at.append(time.monotonic())
        stop.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# -- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A corpus split for training."""

    corpus: Corpus
    train_ids: np.ndarray
    val_ids: np.ndarray


def load_dataset(
    config: RunConfig,
    *,
    cache_dir: Path | None = None,
    vocab: Vocab | None = None,
    skip_unknown: bool = False,
    warn: Callable[[str], None] | None = None,
    on_encode: Callable[[Path], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> Dataset:
    """Read, encode (cached) and split the corpus named by ``config.data``.

    ``vocab``, when given (a resumed run), must equal the corpus's vocabulary.
    """
    data = config.data
    path, name = resolve_corpus(data.path, max_mb=data.max_mb, cache_dir=cache_dir, announce=notice)
    corpus = load_corpus(
        path,
        encoding=data.encoding,
        byte_level=data.byte_level,
        cache_dir=cache_dir,
        name=name,
        on_encode=on_encode,
    )
    if vocab is not None and corpus.vocab != vocab:
        raise CorpusError(
            f"{path}: its vocabulary ({len(corpus.vocab)} symbols) differs from the run's "
            f"({len(vocab)} symbols)"
        )
    if data.val_file:
        val_ids = encode_validation_file(
            Path(data.val_file),
            corpus.vocab,
            encoding=data.encoding,
            skip_unknown=skip_unknown,
            warn=warn,
        )
        train_ids = corpus.ids
    else:
        train_ids, val_ids = split_ids(corpus.ids, data.val_frac)
    return Dataset(corpus, train_ids, val_ids)


# -- the loop -----------------------------------------------------------------------------


class Trainer:
    """One training run: model, optimizer, batches and counters, saved as a whole.

    Build it with :func:`train` or :func:`resume` rather than directly.
    """

    def __init__(
        self,
        config: RunConfig,
        dataset: Dataset,
        run_dir: RunDir,
        *,
        reporter: Reporter | None = None,
        stop: Callable[[], bool] | None = None,
        group: Group | None = None,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.vocab = dataset.corpus.vocab
        self.run_dir = run_dir
        self.group = group or Group()
        # Only rank 0 speaks; the others train silently beside it.
        self.reporter = reporter if reporter and self.group.is_main else SilentReporter()
        self.stop = stop or (lambda: False)
        tc = config.train
        set_threads(tc.threads)
        self.device = select_device(tc.device)
        if self.device.type == "cuda" and self.group.enabled:
            self.device = torch.device("cuda", self.group.local_rank)
        self.rows = self.group.rows(tc.batch_size)  # this rank's rows of each batch
        # Fused AdamW skips a non-finite step on the device (found_inf), no host check.
        self.fused_update = self.device.type in ("cpu", "cuda")
        self.autocast = _autocast_dtype(tc.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if tc.precision == "fp16" else None
        self.batches = StreamBatches(dataset.train_ids, tc.batch_size, tc.seq_len)
        self.validation = ValidationWindows(dataset.val_ids, tc.batch_size, tc.seq_len)
        m = config.model
        parameters = count_parameters(
            m.cell, m.num_layers, m.hidden_size, m.embed_size, len(self.vocab)
        )
        if parameters > MAX_PARAMETERS:
            raise ConfigError(
                f"a {m.cell} {m.num_layers}x{m.hidden_size} model would have {parameters:,} "
                f"parameters; charrnn builds at most {MAX_PARAMETERS:,}"
            )
        torch.manual_seed(tc.seed)
        try:
            self.model = CharRNN(len(self.vocab), config.model).to(self.device)
            self.optimizer = self._make_optimizer()
        except (RuntimeError, MemoryError, OverflowError) as exc:
            detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ConfigError(
                f"cannot build a {m.cell} {m.num_layers}x{m.hidden_size} model "
                f"(embedding {m.embed_size}) on {self.device}: {detail}"
            ) from None
        # The model itself (saved, evaluated, sampled) and what trains it: under torchrun,
        # DistributedDataParallel, which starts every rank from rank 0's weights and
        # averages the gradients.
        self.engine: torch.nn.Module = self.model
        if self.group.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.engine = DistributedDataParallel(self.model, device_ids=ids)
        self.step = 0
        self.chars_seen = 0
        self.elapsed_base = 0.0
        self.best_val_loss = math.inf
        self.last_val_loss = math.inf
        self.state: State | None = None
        # Step bookkeeping lives on the device and is read only when reported, so a
        # step never waits for the device: the running sum and count of training
        # losses since the last evaluation (saved, so a resumed run reports the same
        # means), and the skipped (non-finite) steps: in all, in the current run of
        # them, and the longest such run so far.
        zero = partial(torch.zeros, (), device=self.device)
        self.loss_sum, self.loss_count = zero(), zero()
        self.bad_base = 0  # skipped steps before this process (from the checkpoint)
        self.bad_total, self.bad_run, self.worst_run = zero(), zero(), zero()
        self.finished = False  # the budget is used up (saved, so tools can tell)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW; weight decay on matrices only (biases and norms are left alone)."""
        tc = self.config.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": tc.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=tc.lr, betas=(0.9, 0.99), fused=self.fused_update)

    @property
    def bad_steps(self) -> int:
        """Non-finite steps skipped over the whole run (reads the device)."""
        return self.bad_base + int(self.bad_total.item())

    def mean_train_loss(self) -> float:
        """Mean training loss since the last evaluation (reads the device)."""
        total, count = torch.stack([self.loss_sum, self.loss_count]).tolist()
        return float(total) / max(float(count), 1.0)

    # -- checkpoint state ------------------------------------------------------------

    def payload(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly."""
        corpus = self.dataset.corpus
        # Collectives below: every rank calls payload() at the same step.
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.group.enabled:
            rng["torch_ranks"] = self.group.gather(torch.get_rng_state().unsqueeze(0), dim=0)
        elif self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = [self.group.gather(s.detach(), dim=1) for s in self.state] if self.state else []
        return {
            "charrnn_version": __version__,
            "config": self.config.to_dict(),
            "vocab": self.vocab.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "chars_seen": self.chars_seen,
            "elapsed_s": self.elapsed_base,
            "bad_steps": self.bad_steps,
            "best_val_loss": self.best_val_loss,
            "last_val_loss": self.last_val_loss,
            "num_parameters": self.model.num_parameters,
            "corpus": {
                "name": corpus.name,
                "sha256": corpus.sha256,
                "path": os.path.abspath(corpus.source),
            },
            "state": state,
            "finished": self.finished,
            # The mean over ranks: the reported train loss is linear in it.
            "train_loss_sum": torch.tensor(self.group.mean(float(self.loss_sum))),
            "train_loss_count": int(self.loss_count.item()),
            "rng": rng,
        }

    def restore(self, record: dict[str, Any], path: Path) -> None:
        """Load a checkpoint's weights, optimizer, counters, state and RNG.

        ``record`` must already have been checked by :func:`model_from_record` (as
        :func:`resume` does), so its weights fit this trainer's model.
        """
        try:
            self.model.load_state_dict(record["model"])
            self.optimizer.load_state_dict(record["optimizer"])
            for group in self.optimizer.param_groups:
                # A saved group brings its own "fused" flag (older checkpoints: False on
                # CPU); the skip-on-device logic needs this trainer's choice.
                group["fused"] = self.fused_update
                group["foreach"] = None if self.fused_update else group.get("foreach")
            self.step = int(record["step"])
            self.chars_seen = int(record.get("chars_seen", 0))
            self.elapsed_base = float(record.get("elapsed_s", 0.0))
            self.bad_base = int(record.get("bad_steps", 0))
            self.best_val_loss = float(record.get("best_val_loss", math.inf))
            self.last_val_loss = float(record.get("last_val_loss", math.inf))
            if "train_loss_sum" in record:
                self.loss_sum = record["train_loss_sum"].to(self.device)
                count = float(record["train_loss_count"])
                self.loss_count = torch.tensor(count, device=self.device)
            saved_state = record.get("state") or []
            self.state = (
                tuple(s[:, self.rows].contiguous().to(self.device) for s in saved_state)
                if saved_state
                else None
            )
            rng = record.get("rng", {})
            ranks = rng.get("torch_ranks")
            if ranks is not None and len(ranks) == self.group.world_size:
                torch.set_rng_state(ranks[self.group.rank].clone())  # own storage
            elif "torch" in rng:
                torch.set_rng_state(rng["torch"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state_all(rng["cuda"])
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: cannot resume from this checkpoint: {exc}") from None

    def save(self, *, best: bool = False, last: bool = True) -> None:
        """Save on rank 0 (every rank must call it: the payload gathers their state)."""
        payload = self.payload()
        if not self.group.is_main:
            return
        if last:
            save_checkpoint(self.run_dir.last, payload)
        if best:
            save_checkpoint(self.run_dir.best, payload)

    def _precision(self) -> AbstractContextManager[object]:
        """Autocast for --precision bf16/fp16; nothing for fp32."""
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def release(self) -> None:
        """Drop the DistributedDataParallel wrapper while the process group still exists.

        Its reducer holds the group; destroyed after the group is torn down (whenever
        garbage collection gets to it), it can abort the process at exit.
        """
        self.engine = self.model

    def shared_validation(self) -> float:
        """Validation loss computed once, on rank 0, and shared with every rank."""
        return self.group.from_main(self.evaluate() if self.group.is_main else 0.0)

    # -- evaluation --------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean validation loss in nats per character, over the whole validation text."""
        self.model.eval()
        state: State | None = None
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for x, y in self.validation:
            x, y = x.to(self.device), y.to(self.device)
            logits, state = self.model(x, state)
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
            )
            total += loss.double()
        self.model.train()
        return float(total.item()) / self.validation.num_targets

    def sample_text(self) -> str:
        """A short sample to show how the model writes at this point."""
        length = self.config.train.sample_length
        if length == 0:
            return ""
        text = generate(
            self.model,
            self.vocab,
            length=length,
            settings=SampleSettings(temperature=0.8),
            seed=self.config.train.seed + self.step,
        )[0]
        self.model.train()
        return text

    # -- the loop ----------------------------------------------------------------------

    def fraction(self, step: int, elapsed: float) -> float:
        """Share of the budget used after ``step`` steps and ``elapsed`` seconds."""
        tc = self.config.train
        parts = []
        steps = total_steps(tc, self.batches.windows_per_epoch)
        if steps is not None:
            parts.append(step / steps)
        if tc.time_s is not None:
            parts.append(elapsed / tc.time_s)
        return min(1.0, max(parts))

    def _stopped_by(self, elapsed: float) -> str | None:
        tc = self.config.train
        if tc.steps is not None and self.step >= tc.steps:
            return "steps"
        if tc.epochs is not None and self.step >= tc.epochs * self.batches.windows_per_epoch:
            return "epochs"
        if tc.time_s is not None and elapsed >= tc.time_s:
            return "time"
        return None

    def train_step(self) -> None:
        """One window: forward, backward, clip and update.

        Nothing here reads a value back from the device, so on a GPU the host queues
        the next step while this one runs. A non-finite loss or gradient norm skips
        the update on the device (fused AdamW's ``found_inf``) and resets the
        carried state; the counts are read at the next report.
        """
        tc = self.config.train
        optimizer = self.optimizer
        window = self.batches.window(self.step)
        if window.reset:
            self.state = None  # the streams restart: carried state would be wrong
        x, y = window.x[self.rows], window.y[self.rows]
        if self.device.type == "cuda":  # page-locked, so the copy overlaps compute
            x, y = x.pin_memory(), y.pin_memory()
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        with self._precision():
            logits, new_state = self.engine(x, self.state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(optimizer)
        else:
            loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), tc.clip if tc.clip > 0 else math.inf
        )
        if self.scaler is not None:
            # fp16: overflowing gradients are the scaler's to skip (it then lowers its
            # scale), not a sign that training diverged.
            bad = ~torch.isfinite(loss.detach())
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            bad = ~(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm))
            bad = self.group.any_tensor(bad)  # the ranks' losses differ: agree
            if self.fused_update:
                optimizer.found_inf = bad.float()  # type: ignore[attr-defined]
                optimizer.step()
            elif not bool(bad):  # other devices: one read per step
                optimizer.step()
        # A skipped step restarts the streams' state from zeros, as after a reset.
        self.state = detach_state(tuple(torch.where(bad, 0.0, s.float()) for s in new_state))
        self.loss_sum += torch.where(bad, 0.0, loss.detach())
        self.loss_count += (~bad).float()
        self.bad_total += bad
        self.bad_run.add_(1).mul_(bad)
        torch.maximum(self.worst_run, self.bad_run, out=self.worst_run)

    def check_divergence(self) -> None:
        """Stop after ``--max-bad-steps`` non-finite steps in a row (reads the device)."""
        limit = self.config.train.max_bad_steps
        worst = int(self.worst_run.item())
        if worst >= limit:
            raise TrainingDiverged(
                f"the loss or gradients were not finite for {worst} steps in a row "
                f"(limit {limit}) before step {self.step}; lower --lr or --clip. The last "
                f"saved checkpoints in {self.run_dir.path} are intact"
            )

    def run(self) -> Summary:
        """Train until the budget is used up; save and return how it ended."""
        tc = self.config.train
        model = self.model
        model.train()
        started = time.perf_counter()
        start_step = self.step
        self.reporter.start(
            RunStart(
                run_dir=self.run_dir.path,
                corpus=self.dataset.corpus.name,
                vocab_size=len(self.vocab),
                parameters=model.num_parameters,
                train_chars=len(self.dataset.train_ids),
                val_chars=len(self.dataset.val_ids),
                windows_per_epoch=self.batches.windows_per_epoch,
                device=str(self.device),
                start_step=start_step,
                total_steps=total_steps(tc, self.batches.windows_per_epoch),
            )
        )
        report_at, report_chars = started, self.chars_seen
        speed = 0.0
        eval_at, eval_chars = started, self.chars_seen
        lr = learning_rate(tc, self.fraction(self.step, self.elapsed_base))
        stopped_by = self._stopped_by(self.elapsed_base)
        while stopped_by is None:
            stop_now = self.stop()
            if self.group.enabled:  # every rank stops at the same step
                stop_now = self.group.max(float(stop_now))[0] > 0
            if stop_now:
                self.elapsed_base += time.perf_counter() - started
                self.save()
                raise TrainingInterrupted(
                    f"interrupted at step {self.step}; saved {self.run_dir.last} "
                    f"(continue with: charrnn train --resume {self.run_dir.path})"
                )
            now = time.perf_counter()
            elapsed = self.group.max(self.elapsed_base + (now - started))[0]
            lr = learning_rate(tc, self.fraction(self.step + 1, elapsed))
            for group in self.optimizer.param_groups:
                group["lr"] = lr

            self.train_step()
            self.step += 1
            self.chars_seen += self.batches.chars_per_window
            if self.step % tc.max_bad_steps == 0:
                # A read every few steps, not every step; at a step number, not a time,
                # so under torchrun every rank stops at the same step.
                self.check_divergence()

            now = time.perf_counter()
            elapsed = self.group.max(self.elapsed_base + (now - started))[0]
            stopped_by = self._stopped_by(elapsed)
            evaluate = self.step % tc.eval_every == 0 or stopped_by is not None
            if now - report_at >= _REPORT_INTERVAL_S or evaluate:
                speed = (self.chars_seen - report_chars) / max(now - report_at, 1e-9)
                report_at, report_chars = now, self.chars_seen
                train_loss = self.mean_train_loss()
                self.reporter.progress(
                    Progress(
                        step=self.step,
                        epoch=self.step / self.batches.windows_per_epoch,
                        fraction=self.fraction(self.step, elapsed),
                        train_loss=train_loss,
                        lr=lr,
                        chars_per_s=speed,
                        elapsed_s=elapsed,
                        val_bpc=self.last_val_loss / LN2
                        if math.isfinite(self.last_val_loss)
                        else None,
                    )
                )
            if evaluate:
                # Evaluation, sampling and saving are not training time: bank the
                # training time so far now and restart the clock when they are done.
                self.elapsed_base = elapsed
                train_loss = self.group.mean(self.mean_train_loss())
                self.loss_sum.zero_()
                self.loss_count.zero_()
                eval_speed = (self.chars_seen - eval_chars) / max(now - eval_at, 1e-9)
                val_loss = self.shared_validation()
                is_best = val_loss < self.best_val_loss
                self.last_val_loss = val_loss
                if is_best:
                    self.best_val_loss = val_loss
                evaluation = Evaluation(
                    step=self.step,
                    epoch=round(self.step / self.batches.windows_per_epoch, 4),
                    chars_seen=self.chars_seen,
                    elapsed_s=round(elapsed, 3),
                    lr=lr,
                    train_loss=train_loss,
                    val_loss=val_loss,
                    val_bpc=val_loss / LN2,
                    chars_per_s=round(eval_speed, 1),
                    is_best=is_best,
                    sample=self.sample_text() if self.group.is_main else "",
                )
                if self.group.is_main:
                    self.run_dir.append_metrics(evaluation.record())
                self.reporter.evaluated(evaluation)
                if is_best:
                    self.save(best=True, last=False)
                started = time.perf_counter()
                eval_at, eval_chars = started, self.chars_seen
                report_at, report_chars = started, self.chars_seen
            self.finished = stopped_by is not None
            if self.step % tc.save_every == 0 or self.finished:
                self.elapsed_base += time.perf_counter() - started
                self.save()
                started = time.perf_counter()

        summary = Summary(
            run_dir=self.run_dir.path,
            step=self.step,
            chars_seen=self.chars_seen,
            elapsed_s=self.elapsed_base + (time.perf_counter() - started),
            best_val_loss=self.best_val_loss,
            last_val_loss=self.last_val_loss,
            stopped_by=stopped_by,
            bad_steps=self.bad_steps,
        )
        self.reporter.finish(summary)
        return summary


# -- entry points -----------------------------------------------------------------------


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """Settings whose corpus paths no longer depend on the working directory.

    A run may be resumed from anywhere, so ``config.toml`` and the checkpoint name the
    corpus by absolute path.
    """
    data = config.data
    named = bool(data.path and data.path.startswith(PREFIX))
    return replace(
        config,
        data=replace(
            data,
            path=os.path.abspath(data.path) if data.path and not named else data.path,
            val_file=os.path.abspath(data.val_file) if data.val_file else None,
        ),
    )


def train(
    config: RunConfig,
    out: Path,
    *,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    cache_dir: Path | None = None,
    skip_unknown: bool = False,
    warn: Callable[[str], None] | None = None,
    on_encode: Callable[[Path], None] | None = None,
    notice: Callable[[str], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Summary:
    """Train a new model as ``config`` says, keeping its files in ``out``.

    Under torchrun every process calls this; rank 0 alone writes ``out``.

    Raises:
        CharRNNError: for bad input or files (never leaves a half-written run).
        TrainingInterrupted: after Ctrl-C (or ``stop()``), once ``last.pt`` is saved.
    """
    config = with_absolute_paths(config)
    with session(select_device(config.train.device).type) as group:
        dataset = _main_first(
            group,
            lambda: load_dataset(
                config,
                cache_dir=cache_dir,
                skip_unknown=skip_unknown,
                warn=warn,
                on_encode=on_encode,
                notice=notice,
            ),
        )
        run_dir = RunDir(out)
        # Build the trainer first: bad settings fail before the run directory is touched.
        trainer = Trainer(config, dataset, run_dir, reporter=reporter, stop=stop, group=group)
        with _holding(group, run_dir, create=lambda: run_dir.create(overwrite=overwrite)):
            _on_main(group, lambda: run_dir.write_config(config))
            try:
                return _run(trainer, stop)
            finally:
                trainer.release()


def resume(
    run_path: Path,
    *,
    steps: int | None = None,
    epochs: float | None = None,
    time_s: float | None = None,
    reporter: Reporter | None = None,
    cache_dir: Path | None = None,
    skip_unknown: bool = False,
    warn: Callable[[str], None] | None = None,
    on_encode: Callable[[Path], None] | None = None,
    notice: Callable[[str], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Summary:
    """Continue the run in ``run_path`` from its ``last.pt``, optionally with a new budget."""
    run_dir = RunDir(run_path)
    if not run_dir.path.is_dir():
        raise CheckpointError(f"{run_dir.path}: no such run directory")
    record = load_checkpoint(run_dir.last)
    _, vocab, config = model_from_record(record, run_dir.last)
    budget: dict[str, Any] = {
        key: value
        for key, value in (("steps", steps), ("epochs", epochs), ("time_s", time_s))
        if value is not None
    }
    if budget:
        config = replace(config, train=replace(config.train, **budget))
    with session(select_device(config.train.device).type) as group:
        dataset = _main_first(
            group,
            lambda: load_dataset(
                config,
                cache_dir=cache_dir,
                vocab=vocab,
                skip_unknown=skip_unknown,
                warn=warn,
                on_encode=on_encode,
                notice=notice,
            ),
        )
        stored = record.get("corpus", {})
        if stored.get("sha256") and stored["sha256"] != dataset.corpus.sha256:
            raise CorpusError(
                f"{dataset.corpus.source} changed since this run started; resuming would "
                "train on different text (start a new run instead)"
            )
        with _holding(group, run_dir):
            trainer = Trainer(config, dataset, run_dir, reporter=reporter, stop=stop, group=group)
            trainer.restore(record, run_dir.last)
            if trainer._stopped_by(trainer.elapsed_base) is not None:
                raise CheckpointError(
                    f"{run_dir.path} has already used its budget ({trainer.step} steps); "
                    "give a larger --steps, --epochs or --time to continue"
                )

            def rewrite() -> None:
                run_dir.truncate_metrics(trainer.step, warn)
                run_dir.write_config(config)

            _on_main(group, rewrite)
            try:
                return _run(trainer, stop)
            finally:
                trainer.release()


T = TypeVar("T")


def _main_first(group: Group, load: Callable[[], T]) -> T:
    """Rank 0 loads first (it may encode and cache the corpus); then the others, from
    its cache. In one process: just ``load()``."""
    result: T | None = None
    error: CharRNNError | None = None
    if group.is_main:
        try:
            result = load()
        except CharRNNError as exc:
            error = exc
    require_all(group, error)
    return result if result is not None else load()


def _on_main(group: Group, action: Callable[[], None]) -> None:
    """Run a file operation on rank 0; every rank learns whether it worked."""
    error: CharRNNError | None = None
    if group.is_main:
        try:
            action()
        except CharRNNError as exc:
            error = exc
    require_all(group, error)


@contextmanager
def _holding(
    group: Group, run_dir: RunDir, create: Callable[[], None] | None = None
) -> Iterator[None]:
    """On rank 0: (create and) lock the run directory and clear a killed run's
    temporaries, for as long as the run lasts. The other ranks learn if that failed."""
    with ExitStack() as stack:
        error: CharRNNError | None = None
        if group.is_main:
            try:
                if create is not None:
                    create()
                stack.enter_context(run_dir.lock())
                run_dir.clean_temporaries()
            except CharRNNError as exc:
                error = exc
        require_all(group, error)
        yield


def _run(trainer: Trainer, stop: Callable[[], bool] | None) -> Summary:
    """Run with Ctrl-C turned into a clean stop, unless the caller handles stopping."""
    if stop is not None:
        return trainer.run()
    request = StopRequest()
    trainer.stop = request
    with graceful_interrupt(request):
        return trainer.run()
