"""Four real nodes (memory transport) with their HTTP APIs on free 127.0.0.1 ports, run by
`trio.run` in a background thread, so synchronous client code and click's CliRunner can
talk to them over real HTTP. Member keys are written as key files (mode 0600)."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from afterchain.node.app.vm.agreements import VmAgreementHooks, VmContractHost
from afterchain.node.common.keys import write_key
from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.server import serve_api
from afterchain.node.tools.genesis import DAY_MS, DEFAULT_CONSENSUS, MemberSpec, build_genesis
from afterchain.node.transport.memory import MemoryNetwork
from afterchain.protocol.crypto import KeyPair

CHAIN = "client-test"
MEMBERS = (
    ("acme", "Acme Appliances", ("manufacturer",), 10_000_000),
    ("fixit", "FixIt Repairs", ("service_provider",), 1_000_000),
    ("quickship", "QuickShip Logistics", ("logistics",), 100_000),
    ("shopmart", "ShopMart Retail", ("retailer",), 50_000_000),
    ("watchdog", "Consumer Watchdog", ("auditor",), 0),
)


def seeded(name: str) -> KeyPair:
    return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])


@dataclass
class Cluster:
    root: Path
    spare_validators: int = 0  # nodes with keys val4, val5, ... outside the genesis set (observers until governance adds them)
    urls: list[str] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _token: trio.lowlevel.TrioToken | None = None
    _stop: trio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None
    _log: Any = None

    def key_file(self, org: str) -> str:
        return str(self.root / "keys" / f"{org}.key")

    def customer(self, name: str) -> tuple[KeyPair, str]:
        """A customer key pair and its key file (created once)."""
        kp = seeded("customer-" + name)
        p = self.root / "keys" / f"customer-{name}.key"
        if not p.exists():
            write_key(p, kp)
        return kp, str(p)

    def start(self) -> None:
        import time

        from afterchain.node.common.log import configure

        # node logs go to a file: CliRunner swaps sys.stdout, and the nodes run meanwhile
        self._log = (self.root / "nodes.log").open("a")
        configure(json=True, level="info", stream=self._log)

        validators = [seeded(f"val{i}") for i in range(4)]
        spares = [seeded(f"val{4 + i}") for i in range(self.spare_validators)]
        members = []
        for org, name, roles, balance in MEMBERS:
            kp = seeded(org)
            write_key(self.root / "keys" / f"{org}.key", kp, overwrite=True)
            members.append(MemberSpec(org, name, roles, (kp.public,), balance))
        g = build_genesis(
            chain_id=CHAIN,
            genesis_time_ms=int(time.time() * 1000) - DAY_MS,
            validators=[v.public for v in validators],
            members=members,
            consensus=dataclasses.replace(DEFAULT_CONSENSUS, block_interval_ms=20),
        )

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            net = MemoryNetwork()
            async with trio.open_nursery() as nursery:
                for i, v in enumerate([*validators, *spares]):
                    host = VmContractHost()  # contracts as in `node.service.run_node`
                    n = Node(
                        key=v,
                        genesis=g,
                        data_dir=self.root / f"n{i}",
                        transport=net.add(v.public),
                        options=NodeOptions(name=f"n{i}", tick_ms=20),
                        ledger_hooks=VmAgreementHooks(host),
                        contracts=host,
                    )
                    await nursery.start(n.run)
                    bound = await nursery.start(serve_api, n, "127.0.0.1", 0)
                    self.nodes.append(n)
                    self.urls.append(bound[0])
                self._ready.set()
                await self._stop.wait()
                nursery.cancel_scope.cancel()

        def run() -> None:
            try:
                trio.run(main)
            except BaseException as exc:  # reported to the test thread
                self._error = exc
            finally:
                self._ready.set()

        self._thread = threading.Thread(target=run, name="client-test-cluster", daemon=True)
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None or len(self.urls) != 4 + self.spare_validators:
            raise RuntimeError(f"cluster did not start: {self._error!r}")

    def stop(self) -> None:
        if self._token is not None and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        if self._thread is not None:
            self._thread.join(30)
        import structlog

        structlog.reset_defaults()
        self._log.close()
