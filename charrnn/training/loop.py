"""Truncated backprop through time: the training loop.

Each step feeds window k of every stream, carries the recurrent state into window
k + 1 and detaches it there (see :mod:`charrnn.data.streams`), so the model sees long
context while gradients flow back ``seq_len`` steps. After each step the budget
(:class:`~charrnn.training.schedule.Budget`) says whether to stop, evaluate or train on.
An evaluation during training scores a fixed part of the validation text, draws a
short sample, appends to ``metrics.jsonl`` and saves ``best.pt`` when the loss is the
best so far (``--patience`` ends the run when it stops improving); the final one scores
the whole text, or as much as the budget has left. Every ``save_every`` steps
``last.pt`` is saved. Everything that decides what happens next — weights,
optimizer, step, carried state, random-generator state — is in the checkpoint, so a
resumed run continues exactly as if it had never stopped.

The loop never prints: it reports through a :class:`~charrnn.events.Reporter`.
Setting a run up (process group, dataset, run directory, lock) is
:mod:`charrnn.training.launch`'s job; the budget and learning rate are
:mod:`charrnn.training.schedule`'s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from charrnn._version import __version__
from charrnn.checkpoint import (
    Checkpoint,
    CorpusRecord,
    check_optimizer_state,
    save_checkpoint,
)
from charrnn.config import RunConfig
from charrnn.data.dataset import Dataset, batches_for
from charrnn.errors import CheckpointError, TrainingDiverged, TrainingInterrupted
from charrnn.events import Evaluation, Progress, Reporter, RunStart, Summary, for_rank
from charrnn.hardware import autocast_dtype, select_device, set_threads
from charrnn.model.network import CharRNN, State, detach_state, new_model
from charrnn.rundir import RunDir
from charrnn.training.averaging import AVERAGE_EVERY, WeightAverage
from charrnn.training.clock import PlanWatch, chars_per_s
from charrnn.training.distributed import Group
from charrnn.training.evaluation import Validator, progress_sample
from charrnn.training.schedule import Budget, Verdict
from charrnn.units import to_bits

_REPORT_INTERVAL_S = 0.2


class Trainer:
    """One training run: model, optimizer, batches and counters, saved as a whole.

    Build it through :func:`charrnn.training.launch.train` or
    :func:`~charrnn.training.launch.resume`.
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
        device: torch.device | None = None,
        planned_chars_per_s: float | None = None,
        started: float | None = None,
    ) -> None:
        """``started`` (a :func:`time.monotonic` reading) is when the command began: a
        time budget counts from there (default: now)."""
        self.config = config
        self.dataset = dataset
        self.vocab = dataset.corpus.vocab
        self.run_dir = run_dir
        self.group = group or Group()
        self.reporter = for_rank(reporter, self.group.is_main)
        self.stop = stop or (lambda: False)
        tc = config.train
        set_threads(tc.threads)
        # launch chooses the device once per run and passes it down; built alone
        # (tests, benchmarks), a trainer chooses it from the settings.
        self.device = device or self.group.place(select_device(tc.device))
        self.rows = self.group.rows(tc.batch_size)  # this rank's rows of each batch
        # Fused AdamW skips a non-finite step on the device (found_inf), no host check.
        self.fused_update = self.device.type in ("cpu", "cuda")
        self.autocast = autocast_dtype(tc.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if tc.precision == "fp16" else None
        self.batches, self.validation = batches_for(dataset, tc)
        self.plan = PlanWatch(planned_chars_per_s, tc.time_s)
        self.cold_starts = self.batches.cold_starts()[:, self.rows].to(self.device)
        self.model, self.optimizer = self._build()
        # A running average of the weights, validated beside them (see
        # charrnn.training.averaging): best.pt holds whichever validates better.
        self.average = WeightAverage(self.model) if tc.average else None
        # What each evaluation reads, and which weights it keeps.
        self.validator = Validator(self.model, self.validation, self.device, tc, self.average)
        # The one owner of the run's time; without ``started`` it counts from here, once
        # the model and optimizer are built (building AdamW imports torch._dynamo: seconds).
        self.budget = Budget(
            tc,
            self.batches.windows_per_epoch,
            started=started,
            chars_per_step=self.batches.chars_per_window,
        )
        self.budget.whole_chars = self.validation.num_targets
        self.budget.reads = self.validator.reads
        self.clock = self.budget.clock  # the run's wall time (the budget's)
        # The model itself (saved, evaluated, sampled) and what trains it: under torchrun,
        # DistributedDataParallel, which starts every rank from rank 0's weights and
        # averages the gradients.
        self.engine: torch.nn.Module = self.model
        if self.group.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.engine = DistributedDataParallel(self.model, device_ids=ids)
        self.step = 0
        self.start_step = 0  # where this process began (a resumed run: later)
        self.chars_seen = 0
        self.start_chars = 0  # characters seen when this process began training
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
        self.stopped_by: str | None = None  # which limit ended it
        self.since_best = 0  # evaluations since the best one, for --patience
        self.best_whole = True  # best_val_loss read the whole validation text
        # (characters read, of all) when the final figure read a part: the budget ran out
        self.final_part: tuple[int, int] | None = None

    def _build(self) -> tuple[CharRNN, torch.optim.Optimizer]:
        """The model on this device and AdamW over it (weight decay on matrices only)."""
        tc = self.config.train
        torch.manual_seed(tc.seed)  # the initial weights, dropout masks: all from the seed
        model = new_model(len(self.vocab), self.config.model, self.device)
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": tc.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=tc.lr, betas=(0.9, 0.99), fused=self.fused_update)
        return model, optimizer

    @property
    def bad_steps(self) -> int:
        """Non-finite steps skipped over the whole run (reads the device)."""
        return self.bad_base + int(self.bad_total.item())

    def mean_train_loss(self) -> float:
        """Mean training loss since the last evaluation (reads the device)."""
        total, count = torch.stack([self.loss_sum, self.loss_count]).tolist()
        return float(total) / max(float(count), 1.0)

    # -- checkpoints -------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """Everything that decides what happens next — weights, optimizer, step, carried
        state, counters, random-generator states, the weight average — so a resumed run
        continues exactly as if it had never stopped. Every rank must call it at the
        same step: it gathers the ranks' state.
        """
        corpus = self.dataset.corpus
        rng = self.group.rng_states(self.device)
        state = [self.group.gather(s.detach(), dim=1) for s in self.state] if self.state else []
        return Checkpoint(
            config=self.config,
            vocab=self.vocab,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            step=self.step,
            chars_seen=self.chars_seen,
            elapsed_s=self.clock.elapsed(),
            bad_steps=self.bad_steps,
            best_val_loss=self.best_val_loss,
            last_val_loss=self.last_val_loss,
            num_parameters=self.model.num_parameters,
            corpus=CorpusRecord(corpus.name, corpus.sha256, str(corpus.source.absolute())),
            state=[s.cpu() for s in state],
            finished=self.finished,
            stopped_by=self.stopped_by,
            since_best=self.since_best,
            best_whole=self.best_whole,
            averaged=None if self.average is None else self.average.state_dict(),
            averaged_updates=0 if self.average is None else self.average.updates,
            # The mean over ranks: the reported train loss is linear in it.
            train_loss_sum=self.group.mean(float(self.loss_sum)),
            train_loss_count=int(self.loss_count.item()),
            rng=rng,
            charrnn_version=__version__,
        )

    def _weights(self, averaged: bool) -> dict[str, torch.Tensor]:
        """The model's weights, or with ``averaged`` the average in their place."""
        own = self.model.state_dict()
        if not averaged or self.average is None:
            return own
        return own | self.average.state_dict()

    def restore(self, checkpoint: Checkpoint, path: Path) -> None:
        """Put ``checkpoint`` back into this trainer; a CheckpointError if it does not fit."""
        try:
            self.model.load_state_dict(checkpoint.model)
            if checkpoint.optimizer is None:
                raise ValueError("it holds no optimizer state")
            check_optimizer_state(self.optimizer, checkpoint.optimizer)
            self.optimizer.load_state_dict(checkpoint.optimizer)
            for group in self.optimizer.param_groups:
                # A saved group brings its own "fused" flag (older checkpoints: False on
                # CPU); the skip-on-device logic needs this trainer's choice.
                group["fused"] = self.fused_update
                group["foreach"] = None if self.fused_update else group.get("foreach")
            self.step = checkpoint.step
            self.chars_seen = checkpoint.chars_seen
            self.clock.banked = checkpoint.elapsed_s
            self.bad_base = checkpoint.bad_steps
            self.best_val_loss = checkpoint.best_val_loss
            self.best_whole = checkpoint.best_whole
            self.last_val_loss = checkpoint.last_val_loss
            self.since_best = checkpoint.since_best
            self.loss_sum = torch.tensor(checkpoint.train_loss_sum, device=self.device)
            self.loss_count = torch.tensor(float(checkpoint.train_loss_count), device=self.device)
            self.state = (
                tuple(s[:, self.rows].contiguous().to(self.device) for s in checkpoint.state)
                if checkpoint.state
                else None
            )
            self.group.restore_rng(checkpoint.rng, self.device)
            # A run from before 0.4 has no average: it starts from here on (updates 0).
            if self.average is not None and checkpoint.averaged is not None:
                self.average.load(checkpoint.averaged, checkpoint.averaged_updates)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: cannot resume from this checkpoint: {exc}") from None

    def save(self, *, best: bool = False, last: bool = True, averaged: bool = False) -> None:
        """Save on rank 0 (every rank must call it: the checkpoint gathers their state);
        a best.pt the weight average won (``averaged``) holds the average's weights."""
        with self.clock.spending("saving"):
            checkpoint = self.checkpoint()
            if not self.group.is_main:
                return
            if last:
                save_checkpoint(self.run_dir.last, checkpoint)
            if best:
                save_checkpoint(
                    self.run_dir.best, replace(checkpoint, model=self._weights(averaged))
                )

    def release(self) -> None:
        """Drop the DistributedDataParallel wrapper while the process group still exists.

        Its reducer holds the group; destroyed after the group is torn down (whenever
        garbage collection gets to it), it can abort the process at exit.
        """
        self.engine = self.model

    # -- one step ----------------------------------------------------------------------

    def _precision(self) -> AbstractContextManager[object]:
        """Autocast for --precision bf16/fp16; nothing for fp32."""
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

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
        elif self.state is not None:  # a few rows start cold (see charrnn.data.streams)
            cold = self.cold_starts[self.step % len(self.cold_starts)]
            fresh = getattr(window, "fresh", None)  # a new file of a joined corpus
            if fresh is not None:
                cold = cold | fresh[self.rows].to(self.device, non_blocking=True)
            self.state = tuple(s.masked_fill(cold[None, :, None], 0.0) for s in self.state)
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

    # -- evaluation --------------------------------------------------------------------

    def sample_text(self) -> str:
        """A short sample to show how the model writes at this point."""
        text = progress_sample(
            self.model,
            self.vocab,
            self.config.train.sample_length,
            seed=self.config.train.seed + self.step,
            docs=self.config.data.docs,
        )
        self.model.train()
        return text

    def _evaluate_and_record(
        self, lr: float, elapsed: float, chars_per_s: float, final: bool
    ) -> None:
        """Validate (rank 0, shared), sample, append the metrics, save a new best; tell
        the budget what it took. The part evaluations during training read is sized
        by the budget at the first; the final evaluation reads what fits in the time
        left (:meth:`~charrnn.training.schedule.Budget.final_chars`)."""
        train_loss = self.group.mean(self.mean_train_loss())
        self.loss_sum.zero_()
        self.loss_count.zero_()
        budget, validator = self.budget, self.validator
        began = time.monotonic()
        read_s, read_chars = 0.0, 0
        with self.clock.spending("evaluating"):
            windows, val_loss, is_best, averaged = self.validation, 0.0, False, False
            final_windows = None
            if self.group.is_main:
                part = validator.choose_part(budget.part_chars())
                budget.part = (part.num_targets, bool(part.whole))
                fits = budget.final_chars() if final else None
                before = validator.read_chars
                reading = validator.read(
                    self.step,
                    final=final,
                    best_loss=self.best_val_loss,
                    best_path=self.run_dir.best,
                    final_chars=fits,
                )
                read_s, read_chars = time.monotonic() - began, validator.read_chars - before
                windows, val_loss, is_best = reading.windows, reading.loss, reading.is_best
                averaged, final_windows = reading.averaged, reading.final
                if reading.kept_best is not None:  # best.pt stays, measured again
                    self.best_val_loss = reading.kept_best
                    self.best_whole = bool(final_windows is None or final_windows.whole)
            val_loss = self.group.from_main(val_loss)
            is_best = self.group.from_main(float(is_best)) > 0
            averaged = self.group.from_main(float(averaged)) > 0
            self.best_val_loss = self.group.from_main(self.best_val_loss)
            read_s = self.group.from_main(read_s)
            read_chars = int(self.group.from_main(float(read_chars)))
            val_s = time.monotonic() - began
            # The final sample only while the budget lasts: a run that started late (a
            # busy machine) must not draw 200 characters past its end.
            drawn = self.group.is_main and not (final and budget.left_s() <= 0)
            sample = self.sample_text() if drawn else ""
        self.last_val_loss = val_loss
        self.since_best = 0 if is_best else self.since_best + 1
        if is_best:
            self.best_val_loss = val_loss
            self.best_whole = bool(windows.whole)
        if final and final_windows is not None and not final_windows.whole:
            self.final_part = (final_windows.num_targets, self.validation.num_targets)
        evaluation = Evaluation(
            step=self.step,
            epoch=round(self.step / self.batches.windows_per_epoch, 4),
            chars_seen=self.chars_seen,
            elapsed_s=round(elapsed, 3),
            lr=lr,
            train_loss=train_loss,
            val_loss=val_loss,
            val_bpc=to_bits(val_loss),
            chars_per_s=round(chars_per_s, 1),
            is_best=is_best,
            sample=sample,
            val_chars=windows.num_targets,
            val_whole=bool(windows.whole),
            val_s=round(val_s, 3),
            averaged=averaged,
        )
        if self.group.is_main:
            self.run_dir.append_metrics(evaluation.record())
        self.reporter.evaluated(evaluation)
        if is_best:
            self.save(best=True, last=False, averaged=averaged)
        cost = self.group.max(time.monotonic() - began)[0]
        fraction = budget.fraction(self.step)
        budget.evaluated(fraction, cost, read_chars, read_s, final)

    def _final_evaluation(self, lr: float, elapsed: float, chars_per_s: float) -> None:
        """The evaluation that gives the run its figure, at the step it stopped."""
        part = self.validator.part
        if part is not None and part.whole and self.validator.part_read(self.step):
            # The evaluation at this step read the whole text: its figure is final
            # already (reading it again would cost a whole evaluation past the
            # budget); a best.pt saved by it is saved again to say the run is finished.
            if self.since_best == 0:  # every rank: the checkpoint gathers their state
                self.save(best=True, last=False, averaged=self.validator.last[2])
            return
        self._evaluate_and_record(lr, elapsed, chars_per_s, True)

    # -- the loop ----------------------------------------------------------------------

    def _elapsed(self) -> float:
        """Training seconds so far, the same on every rank (the slowest rank's)."""
        return self.group.max(self.clock.elapsed())[0]

    def _stop_if_requested(self) -> None:
        """Save and raise :class:`TrainingInterrupted` after Ctrl-C, on every rank at once."""
        stop_now = self.stop()
        if self.group.enabled:  # every rank stops at the same step
            stop_now = self.group.max(float(stop_now))[0] > 0
        if stop_now:
            self.save()
            raise TrainingInterrupted(
                self.step,
                str(self.run_dir.last),
                f"continue with: charrnn train --resume {self.run_dir.path}",
                getattr(self.stop, "signal", 2),
            )

    def _report_progress(
        self, lr: float, elapsed: float, chars_per_s: float, *, evaluating: bool = False
    ) -> None:
        last = self.last_val_loss
        self.reporter.progress(
            Progress(
                step=self.step,
                epoch=self.step / self.batches.windows_per_epoch,
                fraction=self.budget.fraction(self.step),
                train_loss=self.mean_train_loss(),
                lr=lr,
                chars_per_s=chars_per_s,
                elapsed_s=elapsed,
                val_bpc=to_bits(last) if math.isfinite(last) else None,
                evaluating=evaluating,
            )
        )

    def _run_start(self) -> RunStart:
        return RunStart(
            run_dir=self.run_dir.path,
            corpus=self.dataset.corpus.name,
            vocab_size=len(self.vocab),
            parameters=self.model.num_parameters,
            train_chars=self.dataset.train_chars,
            val_chars=(
                len(self.dataset.val_ids)
                if self.dataset.val_items is None
                else self.dataset.val_items.num_targets
            ),
            windows_per_epoch=self.batches.windows_per_epoch,
            device=str(self.device),
            start_step=self.step,
            total_steps=self.budget.total_steps,
            items=self.dataset.item_counts,
        )

    def _out_of_patience(self) -> bool:
        patience = self.config.train.patience
        return patience is not None and self.since_best >= patience

    def speed(self) -> float:
        """This process's training speed so far (the one definition:
        :func:`~charrnn.training.clock.chars_per_s`), as the bar and the summary show it."""
        return chars_per_s(self.chars_seen - self.start_chars, self.clock.training_s())

    def _agreed(self, verdict: Verdict) -> Verdict:
        """The budget's verdict, the same on every rank (under torchrun each measures
        its own clock; steps and epochs agree by themselves)."""
        if not self.group.enabled:
            return verdict
        time_up, evaluate = self.group.max(float(verdict.stop == "time"), float(verdict.evaluate))
        stop = verdict.stop or ("time" if time_up > 0 else None)
        return Verdict(stop, evaluate > 0 and stop is None)

    def _save_last(self) -> None:
        began = time.monotonic()
        self.save()
        self.budget.saved(self.group.max(time.monotonic() - began)[0])

    def run(self) -> Summary:
        """Train until the budget is used up (or patience runs out); save and return
        how it ended. At least one step: a run whose budget is used up is refused
        before it gets here (:func:`charrnn.training.launch.resume`)."""
        tc = self.config.train
        budget = self.budget
        self.model.train()
        budget.begin(self.step)
        self.reporter.start(self._run_start())
        self.start_step, self.start_chars = self.step, self.chars_seen
        # (characters, training seconds) at the last report and the last evaluation
        reported = evaluated = (self.chars_seen, 0.0)
        report_at = time.monotonic()
        verdict = Verdict()
        lr = budget.learning_rate(self.step)
        while verdict.stop is None:
            self._stop_if_requested()
            lr = budget.learning_rate(self.step + 1)
            for group in self.optimizer.param_groups:
                group["lr"] = lr

            self.train_step()
            self.step += 1
            if self.average is not None and self.step % AVERAGE_EVERY == 0:
                self.average.update(self.model)
            self.chars_seen += self.batches.chars_per_window
            if self.step % tc.max_bad_steps == 0:
                # A read every few steps, not every step; at a step number, not a time,
                # so under torchrun every rank stops at the same step.
                self.check_divergence()
            budget.stepped()

            # The one decision of this step: stop (and why), evaluate, or train on.
            verdict = self._agreed(budget.verdict(self.step))
            # Set before the final evaluation, so a best.pt saved there says it is final.
            self.finished, self.stopped_by = verdict.stop is not None, verdict.stop
            ending = verdict.evaluate or verdict.stop is not None
            if ending or time.monotonic() - report_at >= _REPORT_INTERVAL_S:
                # This rank's clock: the condition is this rank's too, so no collective
                # here (only rank 0 speaks anyway).
                elapsed = self.clock.elapsed()
                self._report_progress(lr, elapsed, self.speed(), evaluating=ending)
                trained = self.clock.training_s()
                chars, seconds = self.chars_seen - reported[0], trained - reported[1]
                drifted = self.plan.observe(
                    chars_per_s(chars, seconds), seconds, elapsed, self.chars_seen
                )
                if drifted:
                    self.reporter.warning(drifted)
                reported, report_at = (self.chars_seen, trained), time.monotonic()
            if verdict.evaluate:
                trained = self.clock.training_s()
                rate = chars_per_s(self.chars_seen - evaluated[0], trained - evaluated[1])
                self._evaluate_and_record(lr, self._elapsed(), rate, False)
                evaluated = (self.chars_seen, trained)
                if self._out_of_patience():  # early stopping: the evaluation decides
                    verdict = Verdict("patience")
                    self.finished, self.stopped_by = True, "patience"
            if verdict.stop is None and self.step % tc.save_every == 0:
                self._save_last()

        trained = self.clock.training_s()
        rate = chars_per_s(self.chars_seen - evaluated[0], trained - evaluated[1])
        self._final_evaluation(lr, self._elapsed(), rate)
        self._save_last()
        summary = Summary(
            run_dir=self.run_dir.path,
            step=self.step,
            chars_seen=self.chars_seen,
            elapsed_s=self.clock.elapsed(),
            best_val_loss=self.best_val_loss,
            last_val_loss=self.last_val_loss,
            stopped_by=verdict.stop or "unknown",
            bad_steps=self.bad_steps,
            time_spent=self.clock.breakdown(),
            chars_per_s=self.speed(),
            planned_chars_per_s=self.plan.planned,
            final_part=self.final_part,
        )
        self.reporter.finish(summary)
        return summary
