"""Validation of operator instructions, shared by the supervisor and the policy.

An instruction reaches a 3B language model and, through it, the motors; anything odd is
rejected with a reason before a trial starts, never cleaned up silently.
"""

from __future__ import annotations

import unicodedata

from nora_ros.errors import InvalidInstructionError

MAX_INSTRUCTION_CHARS = 256
"""Longest accepted instruction. Bridge instructions are under 100 characters."""


def validate_instruction(text: str | bytes, max_chars: int = MAX_INSTRUCTION_CHARS) -> str:
    """Return the stripped instruction, or raise :class:`InvalidInstructionError` with a reason.

    Bytes must be UTF-8. Rejected: empty after stripping, longer than ``max_chars``, or holding
    a control or other non-printable character (newlines included: an instruction is one line).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInstructionError(f"instruction is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if not isinstance(text, str):
        raise InvalidInstructionError(f"instruction must be text, got {type(text).__name__}")
    if len(text) > 16 * max_chars:
        # Checked before stripping so a 10 MB string is not copied around.
        raise InvalidInstructionError(f"instruction has {len(text)} characters; at most {max_chars} allowed")
    stripped = text.strip()
    if not stripped:
        raise InvalidInstructionError("instruction is empty")
    if len(stripped) > max_chars:
        raise InvalidInstructionError(f"instruction has {len(stripped)} characters; at most {max_chars} allowed")
    for i, ch in enumerate(stripped):
        if ch == " ":
            continue
        if not ch.isprintable() or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise InvalidInstructionError(
                f"instruction holds a non-printable character U+{ord(ch):04X} at position {i}"
            )
    return stripped
