"""Helpers for driving the `cluster` command in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from afterchain.node.tools.cluster import cluster


def status_json(cli: CliRunner, d: Path) -> dict[str, Any]:
    """`cluster status --json`, parsed from stdout alone (stderr may carry log lines)."""
    r = cli.invoke(cluster, ["status", "--dir", str(d), "--json"])
    assert r.exit_code == 0, r.output
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc
