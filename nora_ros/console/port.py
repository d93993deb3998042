"""The console's narrow port to the system, and the snapshots that cross it.

The server never touches the supervisor, the safety filter or the arm: it asks a
:class:`ConsolePort` for frozen snapshots and sends it operator commands. Two implementations:
in-process over the runner (:class:`nora_ros.console.sim_port.SimConsolePort`) and over ROS
topics and services (the console node). Commands raise :class:`~nora_ros.errors.NoraError`
subclasses with a reason the page shows; the server turns them into 4xx answers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class SafetyView:
    """The safety side as the operator sees it: actuation enabled (off = dry run), the e-stop
    latch and its reason, the limits that acted in the last few seconds, whether the arm is held."""

    enabled: bool = True
    estopped: bool = False
    estop_reason: str = ""
    recent_limits: tuple[str, ...] = ()
    holding: bool = True
    """The filter sent no motion on its last tick (the arm is held still)."""


@dataclass(frozen=True)
class PlanView:
    """The evaluation plan's progress: ``label`` ("trial 17 of 90"), what to set up next,
    the next trial's task and instruction, and the estimated time left."""

    name: str = ""
    label: str = ""
    done: int = 0
    total: int = 0
    next_task: str = ""
    next_instruction: str = ""
    next_setup: str = ""
    next_model: str = ""
    eta_s: float | None = None
    blind: bool = False

    @classmethod
    def of(cls, plan: Any, prog: Any) -> PlanView:
        """The view of an :class:`~nora_ros.trials.plan.EvalPlan` given its
        :class:`~nora_ros.trials.plan.PlanProgress`; a blind plan names no next model."""
        nxt = prog.next
        return cls(name=plan.name, label=prog.label, done=prog.done, total=prog.total,
                   next_task=nxt.task.name if nxt else "", next_instruction=nxt.task.instruction if nxt else "",
                   next_setup=nxt.task.setup if nxt else "",
                   next_model="" if (nxt is None or plan.blind) else nxt.model.id, eta_s=prog.eta_s, blind=plan.blind)


@dataclass(frozen=True)
class ConsoleStatus:
    """One snapshot of everything the page shows besides images and results.

    ``model`` is ``""`` while a blind plan is not complete. ``latency_s`` is the last
    inference's time and ``rate_hz`` the policy's chunk rate over the last seconds.
    """

    state: str = "IDLE"
    trial_id: int = 0
    instruction: str = ""
    task: str = ""
    model: str = ""
    elapsed_s: float = 0.0
    steps: int = 0
    reason: str = ""
    latency_s: float | None = None
    rate_hz: float | None = None
    safety: SafetyView = field(default_factory=SafetyView)
    plan: PlanView | None = None
    presets: tuple[str, ...] = ()
    frame_seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class ConsolePort(Protocol):
    """What the console needs from the system. Every method returns quickly (no waiting for
    a trial); :meth:`estop` above all: it must latch the safety filter before returning or
    within one control tick."""

    def status(self) -> ConsoleStatus:
        """The current snapshot."""

    def camera_jpeg(self) -> tuple[int, bytes] | None:
        """(frame sequence number, JPEG) of the latest camera frame, ``None`` before the first."""

    def model_input_jpeg(self) -> bytes | None:
        """The latest frame as the policy sees it (224x224), as JPEG."""

    def start(self, instruction: str = "", task: str = "") -> None:
        """Start a trial (the plan's next one when a plan is loaded and no instruction is given)."""

    def stop(self) -> None:
        """End the running trial early; it then waits for a score."""

    def score(self, text: str) -> None:
        """Score the trial: ``success|failure|partial FRACTION|abort [note]``."""

    def estop(self, reason: str = "console e-stop") -> None:
        """Latch the e-stop at the safety filter; the trial aborts, the arm holds."""

    def reset(self) -> None:
        """Release the e-stop latch (the operator checked the arm)."""

    def set_enabled(self, enabled: bool) -> None:
        """Actuation on or off (off: dry run, nothing moves)."""

    def results(self) -> dict[str, Any]:
        """The results table (Table 1 layout) and the finished trials, as plain data."""
