"""The results store: an append-only JSONL file, one line per finished trial.

Why JSONL, appended and fsynced per trial: an evaluation is hours of operator time, and the
process running it can be killed or lose power at any moment. Each finished trial is written
as one line in a single ``write`` on a file opened with ``O_APPEND``, then flushed to disk
(``fsync``) before the supervisor reports the trial done. So:

- a killed process loses no finished trial (a ``write`` is never half-done by a signal);
- a power cut can leave at most the last line torn; reading reports it as a warning and skips
  it, never crashes; the next append starts on a fresh line so the torn one stays isolated;
- a restart continues the numbering: the next trial id is one more than the largest id read.

One process writes a file at a time (the supervisor that owns it). Each line carries
``schema`` (:data:`SCHEMA_VERSION`); readers skip, with a warning, lines of a newer schema.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import pathlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from nora_ros.errors import InvalidInputError
from nora_ros.trials.score import Score, ScoreKind

SCHEMA_VERSION = 1
"""Version of the line format below; bump it when a field changes meaning or is removed."""


def config_digest(config: Mapping[str, Any]) -> str:
    """A short stable digest of a configuration (sha256 of canonical JSON, 16 hex digits).

    Stored with every trial so results from different settings are never mixed up unnoticed.
    """
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class TrialResult:
    """One finished trial, as stored (one JSON object per line).

    Times are seconds on the supervisor's clock (``start_time`` when the trial was created,
    ``end_time`` when it was scored or aborted); ``duration_s`` is the time the policy ran
    (RUNNING to its end). ``score`` is the judged outcome (``abort`` for aborted trials, with
    the reason in ``reason``). ``category`` groups tasks in the table (optional).
    ``safety_events`` and ``interventions`` are short texts, in order, as reported during the
    trial. ``recording`` is the path of the trial's recording, or ``None``.
    """

    trial_id: int
    task: str
    instruction: str
    score: Score
    start_time: float
    end_time: float
    steps: int = 0
    duration_s: float = 0.0
    model_id: str = ""
    checkpoint: str = ""
    config_digest: str = ""
    category: str = ""
    end_state: str = "DONE"
    reason: str = ""
    safety_events: tuple[str, ...] = ()
    interventions: tuple[str, ...] = ()
    recording: str | None = None
    written_at: str = ""
    schema: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.trial_id, bool) or not isinstance(self.trial_id, int) or self.trial_id < 1:
            raise InvalidInputError(f"trial_id must be a positive integer, got {self.trial_id!r}")
        for name in ("task", "instruction", "model_id", "checkpoint", "config_digest", "category", "reason"):
            if not isinstance(getattr(self, name), str):
                raise InvalidInputError(f"{name} must be text, got {type(getattr(self, name)).__name__}")
        if not self.task:
            raise InvalidInputError("task must be non-empty (it is the table row)")
        if not isinstance(self.score, Score):
            raise InvalidInputError(f"score must be a Score, got {type(self.score).__name__}")
        for name in ("start_time", "end_time", "duration_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidInputError(f"{name} must be a finite number of seconds, got {v!r}")
            object.__setattr__(self, name, float(v))
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise InvalidInputError(f"steps must be a non-negative integer, got {self.steps!r}")
        if self.end_state not in ("DONE", "ABORTED"):
            raise InvalidInputError(f"end_state must be DONE or ABORTED, got {self.end_state!r}")
        object.__setattr__(self, "safety_events", tuple(str(s) for s in self.safety_events))
        object.__setattr__(self, "interventions", tuple(str(s) for s in self.interventions))
        if self.recording is not None and not isinstance(self.recording, str):
            object.__setattr__(self, "recording", str(self.recording))
        object.__setattr__(self, "extra", dict(self.extra))

    @property
    def note(self) -> str:
        """The score's note (the operator's remark)."""
        return self.score.note

    def to_dict(self) -> dict[str, Any]:
        """The JSON line's object: flat, with the score as ``score``/``fraction``/``value``/``note``."""
        d = asdict(self)
        score = self.score
        d["score"] = score.kind.value
        d["fraction"] = score.fraction
        d["value"] = score.value
        d["note"] = score.note
        d["score_source"] = score.source
        d["safety_events"] = list(self.safety_events)
        d["interventions"] = list(self.interventions)
        d["extra"] = dict(self.extra)
        return {"schema": d.pop("schema"), **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialResult:
        """Rebuild from a stored object; raises :class:`InvalidInputError` naming what is wrong."""
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"a result line must be a JSON object, got {type(d).__name__}")
        schema = d.get("schema")
        if schema != SCHEMA_VERSION:
            if isinstance(schema, int) and schema > SCHEMA_VERSION:
                raise InvalidInputError(
                    f"schema {schema} is newer than this nora_ros reads ({SCHEMA_VERSION}); upgrade nora_ros"
                )
            raise InvalidInputError(f"unknown schema {schema!r} (expected {SCHEMA_VERSION})")
        try:
            kind = ScoreKind(d["score"])
            score = Score(
                kind, fraction=d.get("fraction"), note=d.get("note", ""), source=d.get("score_source", "operator")
            )
            return cls(
                trial_id=d["trial_id"],
                task=d["task"],
                instruction=d["instruction"],
                score=score,
                start_time=d["start_time"],
                end_time=d["end_time"],
                steps=d.get("steps", 0),
                duration_s=d.get("duration_s", 0.0),
                model_id=d.get("model_id", ""),
                checkpoint=d.get("checkpoint", ""),
                config_digest=d.get("config_digest", ""),
                category=d.get("category", ""),
                end_state=d.get("end_state", "DONE"),
                reason=d.get("reason", ""),
                safety_events=tuple(d.get("safety_events", ())),
                interventions=tuple(d.get("interventions", ())),
                recording=d.get("recording"),
                written_at=d.get("written_at", ""),
                extra=d.get("extra", {}),
            )
        except KeyError as exc:
            raise InvalidInputError(f"result line lacks the field {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"result line has a bad value: {exc}") from exc


@dataclass(frozen=True)
class LoadedResults:
    """What reading a results file gave: the valid results, in file order, and warnings.

    Each warning names the file and line (1-based) and why the line was skipped.
    """

    path: pathlib.Path
    results: tuple[TrialResult, ...]
    warnings: tuple[str, ...]

    @property
    def next_trial_id(self) -> int:
        return max((r.trial_id for r in self.results), default=0) + 1


def load_results(path: str | os.PathLike[str]) -> LoadedResults:
    """Read a results file, skipping (with a warning each) lines that do not parse.

    A missing file raises :class:`InvalidInputError`; a torn last line (no newline, e.g. after
    a power cut), invalid UTF-8, bad JSON, a wrong schema or a duplicate trial id is a warning.
    """
    p = pathlib.Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidInputError(f"results file {p} does not exist") from exc
    except OSError as exc:
        raise InvalidInputError(f"results file {p} cannot be read: {exc.strerror}") from exc
    results: list[TrialResult] = []
    warnings: list[str] = []
    seen: set[int] = set()
    lines = data.split(b"\n")
    torn_tail = bool(lines) and lines[-1] != b""
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        is_tail = i == len(lines) and torn_tail
        try:
            text = raw.decode("utf-8")
            obj = json.loads(text)
            result = TrialResult.from_dict(obj)
        except (UnicodeDecodeError, json.JSONDecodeError, InvalidInputError) as exc:
            what = "torn last line (no newline; the write was cut off)" if is_tail else "unreadable line"
            warnings.append(f"{p}:{i}: skipped {what}: {exc}")
            continue
        if is_tail:
            # A complete JSON object without its newline: the write reached the object's end;
            # keep it, but say so (the next append starts on a fresh line).
            warnings.append(f"{p}:{i}: last line has no newline; its trial {result.trial_id} was kept")
        if result.trial_id in seen:
            warnings.append(f"{p}:{i}: skipped duplicate trial id {result.trial_id}")
            continue
        seen.add(result.trial_id)
        results.append(result)
    return LoadedResults(p, tuple(results), tuple(warnings))


class ResultsStore:
    """Appends finished trials to a JSONL file, durably, and knows the next trial id.

    Opening reads the existing file (if any) once: its warnings are in :attr:`warnings`, and
    numbering continues after its largest trial id. Each :meth:`append` writes one line with
    ``O_APPEND``, then ``fsync``s it, so a trial reported done is on disk.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = pathlib.Path(path)
        if self.path.exists():
            loaded = load_results(self.path)
            self.warnings: tuple[str, ...] = loaded.warnings
            self._next_id = loaded.next_trial_id
            size = self.path.stat().st_size
            with self.path.open("rb") as f:
                if size:
                    f.seek(size - 1)
                    self._needs_newline = f.read(1) != b"\n"
                else:
                    self._needs_newline = False
        else:
            if not self.path.parent.is_dir():
                raise InvalidInputError(
                    f"folder {self.path.parent} for the results file does not exist; create it first"
                )
            self.warnings = ()
            self._next_id = 1
            self._needs_newline = False

    def next_trial_id(self) -> int:
        """The id the next trial gets; it is reserved by :meth:`allocate_trial_id`."""
        return self._next_id

    def allocate_trial_id(self) -> int:
        """Reserve and return the next trial id (ids of aborted or lost trials are not reused)."""
        tid = self._next_id
        self._next_id += 1
        return tid

    def append(self, result: TrialResult) -> TrialResult:
        """Write ``result`` as one line and fsync; returns it with ``written_at`` filled in."""
        if not result.written_at:
            stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
            result = replace(result, written_at=stamp)
        line = json.dumps(result.to_dict(), ensure_ascii=False, allow_nan=False) + "\n"
        payload = line.encode("utf-8")
        if self._needs_newline:
            # Keep a torn line from a power cut on its own line, so this one stays readable.
            payload = b"\n" + payload
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, payload)
            if written != len(payload):  # pragma: no cover - only on a full disk
                raise OSError(f"short write to {self.path}: {written} of {len(payload)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)
        self._needs_newline = False
        self._next_id = max(self._next_id, result.trial_id + 1)
        return result

    def load(self) -> LoadedResults:
        """Everything in the file now."""
        return load_results(self.path)


def _fsync_dir(folder: pathlib.Path) -> None:
    """Make a newly created file's directory entry durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
