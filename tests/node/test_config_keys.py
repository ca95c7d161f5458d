"""Configuration is validated at start with messages that name the field; key files are
0600 and refused when readable by others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from afterchain.node.cli import cli
from afterchain.node.common.keys import KeyFileError, load_key, write_key
from afterchain.node.runtime.config import ConfigError, load_config
from afterchain.protocol.crypto import KeyPair

GOOD = """
[node]
name = "n0"
data_dir = "data"
key_file = "node.key"
genesis_file = "genesis.json"
[p2p]
listen = "127.0.0.1:7001"
peers = [{ key = "%s", addr = "127.0.0.1:7002" }]
[api]
listen = "127.0.0.1:8001"
""" % ("ab" * 32)


def setup(tmp_path: Path, text: str) -> Path:
    write_key(tmp_path / "node.key", KeyPair.generate())
    (tmp_path / "genesis.json").write_text("{}")
    p = tmp_path / "node.toml"
    p.write_text(text)
    return p


def test_good_config(tmp_path: Path) -> None:
    cfg = load_config(setup(tmp_path, GOOD))
    assert cfg.p2p.port == 7001 and cfg.api.port == 8001
    assert cfg.p2p.peers[0].key == bytes.fromhex("ab" * 32)
    assert cfg.data_dir == tmp_path / "data"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda t: t.replace('listen = "127.0.0.1:7001"', 'listen = "nope"'), "p2p.listen"),
        (lambda t: t.replace('127.0.0.1:8001', '127.0.0.1:99999'), "api.listen"),
        (lambda t: t.replace('key_file = "node.key"', 'key_file = "missing.key"'), "node.key_file"),
        (lambda t: t.replace("ab" * 32, "ab" * 31), "p2p.peers[0].key"),
        (lambda t: t.replace("ab" * 32, "zz"), "p2p.peers[0].key"),
        (lambda t: t + "\n[mempool]\nmax_events = -5\n", "mempool.max_events"),
        (lambda t: t + "\n[mempool]\nmax_evnts = 5\n", "mempool.max_evnts"),
        (lambda t: t + "\n[bogus]\n", "bogus"),
        (lambda t: t + '\n[log]\nlevel = "loud"\n', "log.level"),
        (lambda t: t.replace("[node]", "[nod]"), "nod"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, change, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        load_config(setup(tmp_path, change(GOOD)))
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(setup(tmp_path, "[[[["))


def test_key_files_are_0600_and_refused_when_open(tmp_path: Path) -> None:
    p = write_key(tmp_path / "k.key", KeyPair.generate())
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert load_key(p).public
    with pytest.raises(KeyFileError, match="already exists"):
        write_key(p, KeyPair.generate())
    os.chmod(p, 0o644)
    with pytest.raises(KeyFileError, match="must not be readable by group or others"):
        load_key(p)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key(tmp_path / "none.key")


def test_cli_keygen_and_node_run_with_a_bad_config(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["keygen", "--out", str(tmp_path / "a.key")])
    assert r.exit_code == 0 and len(r.output.strip()) == 64
    bad = setup(tmp_path, GOOD.replace('listen = "127.0.0.1:7001"', 'listen = "x"'))
    r = CliRunner().invoke(cli, ["node", "run", "--config", str(bad)])
    assert r.exit_code == 2 and "p2p.listen" in r.output
