"""What a client request or event came to: the client's errors and `Outcome`.

Every error is a `ClientError` with a stable string `code` and a `message`; the CLI maps
the subclasses to its exit codes. `Outcome` is what became of one event (``accepted`` /
``duplicate`` / ``pending`` on the way, ``committed`` / ``rejected`` when final).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClientError", "InvalidInput", "NotFound", "Outcome", "Rejected", "TimedOut", "Unreachable"]


class ClientError(Exception):
    """Base of the client's errors. `code` is a stable string, `message` says what happened."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InvalidInput(ClientError):
    """The caller's input cannot become a valid event (schema, key file, id format)."""


class Unreachable(ClientError):
    """No node of the list answered usefully after every retry."""

    def __init__(self, message: str) -> None:
        super().__init__("client.unreachable", message)


class TimedOut(ClientError):
    """The event was accepted but no outcome arrived in time (it may still commit)."""

    def __init__(self, event_id: bytes, timeout_s: float) -> None:
        super().__init__("client.timeout", f"no outcome for event {event_id.hex()} after {timeout_s:g} s")
        self.event_id = event_id


class Rejected(ClientError):
    """The node refused the event (at intake or at commit) with a reason code and message."""

    def __init__(self, code: str, message: str, event_id: bytes | None = None, height: int | None = None) -> None:
        super().__init__(code, message)
        self.event_id = event_id
        self.height = height


class NotFound(ClientError):
    """A read found nothing (404): no such ticket, product, escrow, event, block."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of an event: ``committed`` / ``rejected`` (final) or ``pending`` / ``accepted``."""

    id: bytes
    status: str
    height: int | None = None
    index: int | None = None
    code: str | None = None
    message: str | None = None
    type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status in ("committed", "rejected")

    @property
    def committed(self) -> bool:
        return self.status == "committed"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id.hex(), "status": self.status}
        for k in ("type", "height", "index", "code", "message"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        d.update(self.extra)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], type_: str | None = None) -> Outcome:
        return cls(
            id=bytes.fromhex(d["id"]),
            status=d["status"],
            height=d.get("height"),
            index=d.get("index"),
            code=d.get("code"),
            message=d.get("message"),
            type=type_,
        )

    def raise_if_rejected(self) -> Outcome:
        if self.status == "rejected":
            raise Rejected(self.code or "rejected", self.message or "", self.id, self.height)
        return self
