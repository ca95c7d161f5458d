"""Reading the files a node and its clients share (the genesis file) and turning ledger
values into JSON data: used by the server, the HTTP API, the CLIs and the tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.genesis import Genesis

__all__ = ["jsonable", "load_genesis"]


def jsonable(value: Any) -> Any:
    """Ledger values (msgpack data) as JSON data: bytes become hex, tuples lists."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {(k.hex() if isinstance(k, bytes) else str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def load_genesis(path: str | Path) -> Genesis:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read genesis file {p}: {exc}") from None
    try:
        return Genesis.from_json(text)
    except ProtocolError as exc:
        raise ValueError(f"genesis file {p}: {exc}") from None
