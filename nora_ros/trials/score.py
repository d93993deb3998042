"""Trial scores: success, failure, partial (a fraction) or abort, each with an optional note.

Scores come from the operator as one line of text (the ``trial/score`` topic carries a
std_msgs/String; the CLI runner asks at a terminal prompt) or from the simulator's success
check. Operator text is parsed strictly: a typo must not turn a failure into a success, so
anything that is not one of the forms below is rejected with the reason and the accepted forms.

Accepted text (keyword case-insensitive, then an optional free-text note)::

    success [note]
    failure [note]            (also: fail)
    partial FRACTION [note]   FRACTION: 0.5, 1/2 or 50%, within [0, 1]
    abort [note]
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from nora_ros.errors import InvalidInputError

MAX_NOTE_CHARS = 1000
"""Longest accepted note: a note is a remark in a results table, not a log."""

SCORE_HELP = "success [note] | failure [note] | partial FRACTION [note] (0.5, 1/2 or 50%) | abort [note]"


class ScoreKind(str, enum.Enum):
    """How a trial ended, as the operator (or the simulator) judged it."""

    SUCCESS = "success"
    FAILURE = "failure"
    PARTIAL = "partial"
    ABORT = "abort"


@dataclass(frozen=True)
class Score:
    """A judged trial.

    ``value`` is what the trial counts for in a success rate: 1 for success, 0 for failure, the
    fraction for partial (e.g. 0.5 when one of "carrot and hotdog" made it into the pot), and
    ``None`` for abort (an aborted trial is not a policy outcome and is left out of rates).
    ``source`` says who judged: ``"operator"``, ``"sim"`` (a simulator's success check) or
    ``"supervisor"`` (an abort the supervisor decided: e-stop, fault, timeout).
    """

    kind: ScoreKind
    fraction: float | None = None
    note: str = ""
    source: str = "operator"

    def __post_init__(self) -> None:
        kind = ScoreKind(self.kind) if not isinstance(self.kind, ScoreKind) else self.kind
        object.__setattr__(self, "kind", kind)
        if kind is ScoreKind.PARTIAL:
            if self.fraction is None or isinstance(self.fraction, bool):
                raise InvalidInputError("a partial score needs a fraction in [0, 1], e.g. 'partial 0.5'")
            f = float(self.fraction)
            if not (math.isfinite(f) and 0.0 <= f <= 1.0):
                raise InvalidInputError(f"partial score fraction must lie in [0, 1], got {self.fraction}")
            object.__setattr__(self, "fraction", f)
        elif self.fraction is not None:
            raise InvalidInputError(f"only a partial score carries a fraction; {kind.value} got {self.fraction}")
        if not isinstance(self.note, str):
            raise InvalidInputError(f"score note must be text, got {type(self.note).__name__}")
        if len(self.note) > MAX_NOTE_CHARS:
            raise InvalidInputError(f"score note has {len(self.note)} characters; at most {MAX_NOTE_CHARS} allowed")
        if not self.source or not isinstance(self.source, str):
            raise InvalidInputError("score source must be a non-empty name such as 'operator' or 'sim'")

    @property
    def value(self) -> float | None:
        """1.0 success, 0.0 failure, the fraction for partial, ``None`` for abort."""
        if self.kind is ScoreKind.SUCCESS:
            return 1.0
        if self.kind is ScoreKind.FAILURE:
            return 0.0
        if self.kind is ScoreKind.PARTIAL:
            return self.fraction
        return None

    @classmethod
    def from_success_check(cls, result: bool | float, note: str = "", source: str = "sim") -> Score:
        """A score from an automatic success check (the simulator's).

        ``True``/``False`` give success/failure; a number in [0, 1] gives success at 1,
        failure at 0 and partial in between (multi-object tasks).
        """
        if isinstance(result, bool):
            return cls(ScoreKind.SUCCESS if result else ScoreKind.FAILURE, note=note, source=source)
        f = float(result)
        if not (math.isfinite(f) and 0.0 <= f <= 1.0):
            raise InvalidInputError(f"success check must return a bool or a fraction in [0, 1], got {result!r}")
        if f == 1.0:
            return cls(ScoreKind.SUCCESS, note=note, source=source)
        if f == 0.0:
            return cls(ScoreKind.FAILURE, note=note, source=source)
        return cls(ScoreKind.PARTIAL, fraction=f, note=note, source=source)


_KEYWORDS = {
    "success": ScoreKind.SUCCESS,
    "failure": ScoreKind.FAILURE,
    "fail": ScoreKind.FAILURE,
    "partial": ScoreKind.PARTIAL,
    "abort": ScoreKind.ABORT,
}

_FRACTION = re.compile(r"^(?:(?P<num>\d+)/(?P<den>\d+)|(?P<pct>\d+(?:\.\d*)?|\.\d+)%|(?P<dec>\d+(?:\.\d*)?|\.\d+))$")


def _parse_fraction(token: str) -> float:
    m = _FRACTION.match(token)
    if not m:
        raise InvalidInputError(f"partial score needs a fraction such as 0.5, 1/2 or 50%; got {token!r}")
    if m["num"] is not None:
        den = int(m["den"])
        if den == 0:
            raise InvalidInputError(f"partial score fraction {token!r} divides by zero")
        f = int(m["num"]) / den
    elif m["pct"] is not None:
        f = float(m["pct"]) / 100.0
    else:
        f = float(m["dec"])
    if not 0.0 <= f <= 1.0:
        raise InvalidInputError(f"partial score fraction must lie in [0, 1], got {token!r}")
    return f


def parse_score(text: str | bytes, source: str = "operator") -> Score:
    """Parse one line of operator text into a :class:`Score`, or raise with the accepted forms."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"score text is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if not isinstance(text, str):
        raise InvalidInputError(f"score must be text, got {type(text).__name__}")
    parts = text.strip().split(maxsplit=1)
    if not parts:
        raise InvalidInputError(f"score is empty; expected {SCORE_HELP}")
    word = parts[0].lower()
    kind = _KEYWORDS.get(word)
    if kind is None:
        hint = [k for k in _KEYWORDS if k.startswith(word[:2])] if word else []
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise InvalidInputError(f"unknown score {parts[0][:40]!r}{did_you_mean}; expected {SCORE_HELP}")
    rest = parts[1].strip() if len(parts) > 1 else ""
    fraction = None
    if kind is ScoreKind.PARTIAL:
        frac_parts = rest.split(maxsplit=1)
        if not frac_parts:
            raise InvalidInputError("partial score needs a fraction, e.g. 'partial 0.5 carrot only'")
        fraction = _parse_fraction(frac_parts[0])
        rest = frac_parts[1].strip() if len(frac_parts) > 1 else ""
    return Score(kind, fraction=fraction, note=rest, source=source)
