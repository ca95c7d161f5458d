"""One 4-node cluster (in-process, real HTTP) shared by the client tests, a CLI runner, and
`make`: the SDK client of each flavour (sync, async under trio, async under asyncio)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from afterchain.node.cli import cli

from .cluster import Cluster
from .flavours import NAMES, Flavour, flavours


@pytest.fixture(scope="package")  # stopped after the last client test: no idle nodes later
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("client-cluster")))
    c.start()
    try:
        yield c
    finally:
        c.stop()


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def id(self) -> str:
        return self.out.strip()


class Cli:
    """Runs `afterchain ...` in-process against the cluster and checks the exit code."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def __call__(self, *args: str, key: str | None = None, expect: int = 0, nodes: list[str] | None = None) -> Ran:
        argv = list(args)
        for u in self.cluster.urls if nodes is None else nodes:
            argv += ["--node", u]
        if key is not None:
            argv += ["--key", key if "/" in key else self.cluster.key_file(key)]
        r = CliRunner().invoke(cli, argv, catch_exceptions=False)
        ran = Ran(r.exit_code, r.stdout, r.stderr)
        assert ran.code == expect, (
            f"afterchain {' '.join(args)} exited {ran.code}, expected {expect}\n{ran.out}\n{ran.err}"
        )
        return ran

    def rejected(self, code: str, *args: str, key: str | None = None) -> Ran:
        """The command is refused by the node with reason `code`: exit 1, code printed."""
        r = self(*args, key=key, expect=1)
        assert code in r.err, r.err
        return r


@pytest.fixture
def run(cluster: Cluster) -> Cli:
    return Cli(cluster)


@pytest.fixture(params=NAMES)
def make(request: pytest.FixtureRequest) -> Iterator[Flavour]:
    """Makes the test's clients: `Client`, or `AsyncClient` on trio / asyncio (see `flavours`)."""
    yield from flavours(request.param)
