"""Addresses in node.toml (IPv4, [IPv6], DNS names, multiaddrs) and the
`AFTERCHAIN_<SECTION>_<KEY>` environment overrides: values, and errors that name the field
and the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from afterchain.node.common.keys import write_key
from afterchain.node.runtime.config import ConfigError, env_overrides, load_config, parse_address
from afterchain.protocol.crypto import KeyPair

K1, K2 = "ab" * 32, "cd" * 32
BASE = f"""
[node]
name = "n0"
data_dir = "data"
key_file = "node.key"
genesis_file = "genesis.json"
[p2p]
listen = "0.0.0.0:7001"
peers = [{{ key = "{K1}", addr = "v1:7001" }}]
"""


def cfg_file(tmp_path: Path, text: str = BASE) -> Path:
    write_key(tmp_path / "node.key", KeyPair.generate(), overwrite=True)
    (tmp_path / "genesis.json").write_text("{}")
    p = tmp_path / "node.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7001", ("ip4", "127.0.0.1", 7001)),
        ("[::1]:7001", ("ip6", "::1", 7001)),
        ("[fd52:25b::2]:7002", ("ip6", "fd52:25b::2", 7002)),
        ("validator-1:7001", ("dns", "validator-1", 7001)),
        ("node.acme.example.com:7001", ("dns", "node.acme.example.com", 7001)),
        ("/ip4/10.0.0.5/tcp/7001", ("ip4", "10.0.0.5", 7001)),
        ("/ip6/::/tcp/7001", ("ip6", "::", 7001)),
        ("/dns4/v1/tcp/7001", ("dns4", "v1", 7001)),
        ("/dns6/v1.example/tcp/7001", ("dns6", "v1.example", 7001)),
        ("/dns/v1/tcp/0", ("dns", "v1", 0)),
    ],
)
def test_address_forms(text: str, expected: tuple[str, str, int]) -> None:
    assert parse_address(text, "p2p.listen") == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("::1:7001", "brackets"),
        ("[::1]7001", "'[IPv6]:port'"),
        ("[10.0.0.1]:7001", "'[IPv6]:port'"),
        ("v1", "expected"),
        ("v1:http", "not a number"),
        ("v1:70000", "not in 0..65535"),
        (":7001", "the host is empty"),
        ("my_host:7001", "neither an IP address nor a DNS name"),
        ("-bad.example:7001", "neither an IP address nor a DNS name"),
        ("300.1.1.1:7001", "not a valid IPv4 address"),
        ("/ip4/v1/tcp/7001", "for a name use /dns/v1/tcp/7001"),
        ("/ip4/::1/tcp/7001", "use /ip6/"),
        ("/dns4/v1/udp/7001", "a multiaddr here is"),
        ("/dns4/v1/tcp/7001/p2p/Qm", "a multiaddr here is"),
    ],
)
def test_bad_addresses_say_why(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_address(text, "p2p.peers[0].addr")
    assert info.value.field == "p2p.peers[0].addr"
    assert why in str(info.value)


def test_config_with_names_and_ipv6(tmp_path: Path) -> None:
    text = BASE.replace('"0.0.0.0:7001"', '"[::]:7001"').replace(
        f'{{ key = "{K1}", addr = "v1:7001" }}',
        f'{{ key = "{K1}", addr = "v1:7001" }}, {{ key = "{K2}", addr = "/dns6/v2.example/tcp/7002" }}',
    ) + '[api]\nlisten = "[::1]:8001"\n'
    c = load_config(cfg_file(tmp_path, text), env={})
    assert c.p2p.listen_multiaddr == "/ip6/::/tcp/7001"
    assert [p.multiaddr for p in c.p2p.peers] == ["/dns/v1/tcp/7001", "/dns6/v2.example/tcp/7002"]
    assert (c.api.host, c.api.port) == ("::1", 8001)
    with pytest.raises(ConfigError, match=r"api\.listen: expected .host:port. or"):
        load_config(cfg_file(tmp_path, BASE + '[api]\nlisten = "/ip4/127.0.0.1/tcp/8001"\n'), env={})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "AFTERCHAIN_NODE_NAME": "acme-validator-1",
        "AFTERCHAIN_NODE_DATA_DIR": "/var/lib/afterchain",
        "AFTERCHAIN_P2P_LISTEN": "[::]:7101",
        "AFTERCHAIN_P2P_PEERS": f"{K1}@v1:7001, {K2}@/dns4/v2/tcp/7001",
        "AFTERCHAIN_API_LISTEN": "0.0.0.0:8101",
        "AFTERCHAIN_MEMPOOL_MAX_EVENTS": "5000",
        "AFTERCHAIN_MEMBER_VERIFY_EVENT_SIGNATURES": "true",
        "AFTERCHAIN_LOG_FORMAT": "json",
        # not the node's configuration: left alone
        "AFTERCHAIN_NODE": "http://x:8001", "AFTERCHAIN_KEY": "k.key", "AFTERCHAIN_MEMREPORT_S": "5", "HOME": "/root",
    }
    c = load_config(cfg_file(tmp_path), env=env)
    assert c.name == "acme-validator-1"
    assert c.data_dir == Path("/var/lib/afterchain")
    assert (c.p2p.kind, c.p2p.host, c.p2p.port) == ("ip6", "::", 7101)
    assert [(p.key.hex(), p.multiaddr) for p in c.p2p.peers] == [(K1, "/dns/v1/tcp/7001"), (K2, "/dns4/v2/tcp/7001")]
    assert (c.api.host, c.api.port) == ("0.0.0.0", 8101)
    assert c.mempool.max_events == 5000
    assert c.member.verify_event_signatures is True
    assert c.log.format == "json"
    # a TOML array works for the peers too; a relative path is relative to the config file
    c = load_config(cfg_file(tmp_path), env={"AFTERCHAIN_P2P_PEERS": f'[{{ key = "{K2}", addr = "[::1]:7009" }}]',
                                             "AFTERCHAIN_NODE_DATA_DIR": "d2"})
    assert [p.multiaddr for p in c.p2p.peers] == ["/ip6/::1/tcp/7009"]
    assert c.data_dir == tmp_path / "d2"
    # the process environment is the default
    assert load_config(cfg_file(tmp_path)).name in {"n0", __import__("os").environ.get("AFTERCHAIN_NODE_NAME")}


@pytest.mark.parametrize(
    ("env", "field", "var"),
    [
        ({"AFTERCHAIN_MEMPOOL_MAX_EVENTS": "-1"}, "mempool.max_events", "AFTERCHAIN_MEMPOOL_MAX_EVENTS"),
        ({"AFTERCHAIN_MEMPOOL_MAX_EVENTS": "lots"}, "mempool.max_events", "AFTERCHAIN_MEMPOOL_MAX_EVENTS"),
        ({"AFTERCHAIN_MEMPOOL_MAX_EVNTS": "5"}, "mempool.max_evnts", "AFTERCHAIN_MEMPOOL_MAX_EVNTS"),
        ({"AFTERCHAIN_P2P_LISTEN": "::1:7001"}, "p2p.listen", "AFTERCHAIN_P2P_LISTEN"),
        ({"AFTERCHAIN_P2P_PEERS": f"{K1}@bad_name:7001"}, "p2p.peers[0].addr", "AFTERCHAIN_P2P_PEERS"),
        ({"AFTERCHAIN_P2P_PEERS": "v1:7001"}, "AFTERCHAIN_P2P_PEERS", "AFTERCHAIN_P2P_PEERS"),
        ({"AFTERCHAIN_LOG_LEVEL": "loud"}, "log.level", "AFTERCHAIN_LOG_LEVEL"),
        ({"AFTERCHAIN_NODE_KEY_FILE": "missing.key"}, "node.key_file", "AFTERCHAIN_NODE_KEY_FILE"),
    ],
)
def test_bad_environment_values_name_the_variable(tmp_path: Path, env: dict[str, str], field: str, var: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file(tmp_path), env=env)
    assert info.value.field == field
    assert var in str(info.value)


def test_env_overrides_parsing() -> None:
    got = env_overrides({"AFTERCHAIN_API_MAX_BATCH_EVENTS": "10", "AFTERCHAIN_NODE_NAME": "007",
                         "AFTERCHAIN_NODE_GENESIS_FILE": "/etc/afterchain/genesis.json", "AFTERCHAIN_TEST_SWITCHES": "1"})
    assert got == {
        ("api", "max_batch_events"): ("AFTERCHAIN_API_MAX_BATCH_EVENTS", 10),
        ("node", "name"): ("AFTERCHAIN_NODE_NAME", "007"),  # not TOML (a leading zero): a string
        ("node", "genesis_file"): ("AFTERCHAIN_NODE_GENESIS_FILE", "/etc/afterchain/genesis.json"),
    }
