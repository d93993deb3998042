"""Evaluation plans: which tasks, how many trials each, which models, in what order.

An evaluation like the NORA paper's Table 1 is tasks x models x trials. The plan is a YAML
file the operator writes once; the console walks through it ("trial 17 of 90", what to set up
next) and a restart resumes it from the results file. Resuming needs no state of its own: the
k-th planned trial of (task, model) is done when the results file holds k scored (DONE) trials
of that task and model, so nothing is re-run and nothing is lost; an aborted trial does not
use up its slot (it is kept in the file, and the slot is run again).

Format::

    name: table1-carrot
    order: randomized        # blocked | interleaved | randomized
    seed: 7                  # for randomized
    blind: true              # hide the models from the page until the plan is complete
    models:
      - {id: nora, checkpoint: declare-lab/nora}
      - {id: nora-long, checkpoint: declare-lab/nora-long, policy: nora}
    tasks:
      - {name: carrot in pot, instruction: put the carrot in the pot, trials: 10, setup: carrot left of the pot}

``blocked``: all trials of one model, task by task, then the next model (fewest checkpoint
switches); ``interleaved``: round-robin over models for each trial of each task (drift in the
lab hits all models alike); ``randomized``: a seeded shuffle of the whole list.
"""

from __future__ import annotations

import collections
import pathlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nora_ros.errors import ConfigurationError
from nora_ros.trials.instruction import validate_instruction

ORDERS = ("blocked", "interleaved", "randomized")


@dataclass(frozen=True)
class PlanTask:
    """One row of the table: ``name`` (the results' task), the instruction, trials per model,
    what the operator sets up before each trial, and (simulator only) the sim task to load."""

    name: str
    instruction: str
    trials: int
    setup: str = ""
    sim_task: str = ""

    def __post_init__(self) -> None:
        validate_instruction(self.name)
        validate_instruction(self.instruction)
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ConfigurationError(f"task {self.name!r}: trials must be an integer >= 1, got {self.trials!r}")


@dataclass(frozen=True)
class PlanModel:
    """A model under evaluation: ``id`` (the table's column), its checkpoint, and the policy
    kind that loads it (``nora``, or ``scripted`` for the simulator's expert)."""

    id: str
    checkpoint: str = ""
    policy: str = "nora"

    def __post_init__(self) -> None:
        validate_instruction(self.id)


@dataclass(frozen=True)
class PlannedTrial:
    """One slot of the plan: ``index`` 0-based in plan order, ``repeat`` 1-based within (task, model)."""

    index: int
    task: PlanTask
    model: PlanModel
    repeat: int


@dataclass(frozen=True)
class EvalPlan:
    """A whole evaluation series (see the module docstring)."""

    name: str
    tasks: tuple[PlanTask, ...]
    models: tuple[PlanModel, ...]
    order: str = "blocked"
    seed: int = 0
    blind: bool = False

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ConfigurationError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if not self.tasks or not self.models:
            raise ConfigurationError("a plan needs at least one task and one model")
        for what, names in (("task", [t.name for t in self.tasks]), ("model", [m.id for m in self.models])):
            dup = [n for n, c in collections.Counter(names).items() if c > 1]
            if dup:
                raise ConfigurationError(f"{what} names must be unique; repeated: {', '.join(dup)}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EvalPlan:
        """A plan from parsed YAML; errors name the field and the fix."""
        if not isinstance(data, Mapping):
            raise ConfigurationError("an eval plan is a YAML mapping with 'tasks' and 'models'")
        known = {"name", "tasks", "models", "order", "seed", "blind"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(f"unknown plan field(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(known))}")
        tasks = tuple(PlanTask(**_entry(t, PlanTask, "task", i)) for i, t in enumerate(data.get("tasks") or ()))
        models = tuple(PlanModel(**_entry({"id": m} if isinstance(m, str) else m, PlanModel, "model", i))
                       for i, m in enumerate(data.get("models") or ()))
        return cls(name=str(data.get("name", "plan")), tasks=tasks, models=models,
                   order=str(data.get("order", "blocked")), seed=int(data.get("seed", 0)),
                   blind=bool(data.get("blind", False)))

    @property
    def total(self) -> int:
        return len(self.models) * sum(t.trials for t in self.tasks)

    def schedule(self) -> list[PlannedTrial]:
        """Every planned trial, in the plan's order (deterministic for a given seed)."""
        slots: list[tuple[PlanTask, PlanModel, int]] = []
        if self.order == "blocked":
            slots = [(t, m, k + 1) for m in self.models for t in self.tasks for k in range(t.trials)]
        else:
            slots = [(t, m, k + 1) for t in self.tasks for k in range(t.trials) for m in self.models]
            if self.order == "randomized":
                random.Random(self.seed).shuffle(slots)
        # Repeats are numbered in the final order, so the k-th slot of (task, model) is the one
        # done by the k-th result: what makes resuming from the results file follow the order.
        seen: collections.Counter[tuple[str, str]] = collections.Counter()
        out = []
        for i, (t, m, _) in enumerate(slots):
            seen[(t.name, m.id)] += 1
            out.append(PlannedTrial(i, t, m, seen[(t.name, m.id)]))
        return out


def _entry(entry: Any, cls: type, what: str, index: int) -> dict[str, Any]:
    """One task or model mapping, its fields checked against ``cls`` with a message that says
    which entry and what is known (a comma inside an unquoted flow mapping splits a value)."""
    import dataclasses

    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{what} {index + 1}: expected a mapping, got {entry!r}")
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = [str(k) for k in entry if k not in fields]
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    missing = [k for k in required if k not in entry]
    if unknown or missing:
        name = entry.get("name", entry.get("id", ""))
        problem = f"unknown field(s) {', '.join(map(repr, unknown))}" if unknown else \
            f"missing {', '.join(missing)}"
        raise ConfigurationError(f"{what} {index + 1} {name!r}: {problem}; fields: {', '.join(fields)} (quote a "
                                 "value that holds a comma or a colon)")
    return dict(entry)


def load_plan(path: str | pathlib.Path) -> EvalPlan:
    """Read a plan YAML file."""
    import yaml

    try:
        data = yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read eval plan {path}: {exc}") from exc
    return EvalPlan.from_mapping(data)


@dataclass(frozen=True)
class PlanProgress:
    """Where a plan stands given the results so far: ``next`` is ``None`` when it is complete."""

    done: int
    total: int
    next: PlannedTrial | None
    eta_s: float | None

    @property
    def label(self) -> str:
        """``"trial 17 of 90"`` (the trial to run next), or ``"plan complete (90 of 90)"``."""
        if self.next is None:
            return f"plan complete ({self.done} of {self.total})"
        return f"trial {self.done + 1} of {self.total}"


def progress(plan: EvalPlan, results: Iterable[Any], default_trial_s: float = 60.0) -> PlanProgress:
    """Which planned trials are done, from ``results`` (:class:`TrialResult` objects of the plan's
    results file): a slot (task, model, k) is done when k DONE results of that task and model exist.
    ``eta_s``: remaining trials times the mean duration (start to score) of those done."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    durations = []
    for r in results:
        if r.end_state == "DONE":
            counts[(r.task, r.model_id)] += 1
            durations.append(max(0.0, r.end_time - r.start_time))
    done = 0
    nxt = None
    for slot in plan.schedule():
        if counts[(slot.task.name, slot.model.id)] >= slot.repeat:
            done += 1
        elif nxt is None:
            nxt = slot
    mean = sum(durations) / len(durations) if durations else default_trial_s
    remaining = plan.total - done
    return PlanProgress(done, plan.total, nxt, remaining * mean if remaining else 0.0)
