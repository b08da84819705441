"""What a training stage shows and keeps: one progress bar, and its trainer's log in a file.

transformers' Trainer adds a ProgressCallback (PrinterCallback with `disable_tqdm`) that prints
every `logs` dictionary to the terminal: a hundred lines of `{'loss': ...}` per stage. `attach`
replaces it with `StageProgress`, which shows one tqdm bar per stage, named after it (steps, rate,
ETA, the latest loss), and appends every dictionary as one JSON line to the stage folder's
`train_log.jsonl`, next to its stage.json (whose `log`, the trainer's `state.log_history`, stays
what the report's curves read). With `--verbose` (PREFSIFT_VERBOSE=1) the dictionaries are printed
as well, as TRL does. Only the world's process 0 shows a bar and writes the file. Display only:
nothing here changes what
is trained or logged."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ..core.quiet import verbose

LOG_NAME = "train_log.jsonl"


def _progress_callback_classes() -> tuple[type, ...]:
    classes: list[type] = [PrinterCallback, ProgressCallback]
    try:
        from transformers.utils.notebook import NotebookProgressCallback

        classes.append(NotebookProgressCallback)
    except ImportError:  # pragma: no cover
        pass
    return tuple(classes)


def attach(trainer, label: str, folder: str | Path, show: bool = True) -> StageProgress:
    """Replace `trainer`'s printing callbacks by a `StageProgress` for the stage `label` whose
    folder is `folder` (its train_log.jsonl starts empty); `show=False` (--quiet) shows no bar."""
    for cb in list(trainer.callback_handler.callbacks):
        if isinstance(cb, _progress_callback_classes()):
            trainer.remove_callback(cb)
    progress = StageProgress(label, folder, show=show, main=trainer.is_world_process_zero())
    trainer.add_callback(progress)
    return progress


def _callback_base():
    return TrainerCallback


class StageProgress(_callback_base()):
    """One tqdm bar for a training stage (and a transient one while it evaluates); every log
    dictionary to `<folder>/train_log.jsonl`, and to the terminal with `--verbose`."""

    def __init__(self, label: str, folder: str | Path, show: bool = True, main: bool = True):
        self.label = label
        self.path = Path(folder) / LOG_NAME
        self.show = show
        self.main = main
        self.bar = None
        self.eval_bar = None
        self.step = 0
        self.postfix: dict[str, str] = {}
        if main:  # a stage trained again starts a fresh file
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def _tqdm(self, **kw):
        return tqdm(dynamic_ncols=True, **kw)

    def on_train_begin(self, args, state, control, **kwargs):
        self.step = state.global_step
        if state.is_world_process_zero and self.show:
            self.bar = self._tqdm(total=state.max_steps, initial=state.global_step, desc=self.label,
                                  unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.step)
        self.step = state.global_step

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if not (state.is_world_process_zero and self.show):
            return
        if self.eval_bar is None:
            try:
                total = len(eval_dataloader)
            except TypeError:
                total = None
            self.eval_bar = self._tqdm(total=total, desc=f"{self.label}: validation", unit="batch",
                                       leave=False)
        self.eval_bar.update(1)

    def _close_eval_bar(self):
        if self.eval_bar is not None:
            self.eval_bar.close()
            self.eval_bar = None

    def on_evaluate(self, args, state, control, **kwargs):
        self._close_eval_bar()

    def on_predict(self, args, state, control, **kwargs):
        self._close_eval_bar()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or logs is None:
            return
        # The entry the trainer appended to state.log_history (Trainer.log): the logs and the step.
        entry = {**logs, "step": state.global_step}
        with self.path.open("a") as f:
            f.write(json.dumps(entry, default=_plain) + "\n")
        for key, short in (("loss", "loss"), ("eval_loss", "val"), ("reward", "reward")):
            value = logs.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.postfix[short] = f"{value:.4g}"
        if self.bar is not None and self.postfix:
            self.bar.set_postfix(self.postfix, refresh=False)
        if verbose():
            # As transformers' ProgressCallback prints them (floats to 4 significant digits).
            shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in logs.items()
                     if k != "total_flos"}
            tqdm.write(str(shown))

    def on_train_end(self, args, state, control, **kwargs):
        self._close_eval_bar()
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _plain(value):
    """A log value JSON does not know (a tensor, a numpy number) as a plain number, list or
    string."""
    for convert in ("item", "tolist"):
        try:
            return getattr(value, convert)()
        except (AttributeError, TypeError, ValueError, RuntimeError):
            pass
    return str(value)


def read_log(folder: str | Path) -> list[dict]:
    """The log dictionaries a stage's `train_log.jsonl` holds, in order ([] when there is none)."""
    path = Path(folder) / LOG_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
