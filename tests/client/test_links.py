"""Customer links and QR codes (issue 24): `afterchain product qr` writes a QR code that a
decoder (zxing-cpp) reads back as the GS1 Digital Link; `afterchain ticket link`; the light
client's defaults from a local network; `ticket show` prints readable text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zxingcpp
from click.testing import CliRunner
from PIL import Image

from afterchain.node.cli import cli
from afterchain.node.client.links import product_link, ticket_link

from ..node.util import genesis

GTIN = "09506000134352"
BASE = "https://service.example/passports"
G = genesis()
GHASH = G.hash().hex()


@pytest.fixture(autouse=True)
def genesis_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local network's genesis file (the links' default trust anchor), and no other network."""
    d = tmp_path_factory.mktemp("cluster")
    (d / "genesis.json").write_text(G.to_json())
    monkeypatch.setenv("AFTERCHAIN_CLUSTER_DIR", str(d))
    return d / "genesis.json"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize("serial", ["K1A", "AB/12%x"])
def test_product_qr_png_decodes_to_the_digital_link(tmp_path: Path, serial: str) -> None:
    out = tmp_path / "p.png"
    code, stdout, err = run("product", "qr", GTIN, serial, "--base-url", BASE + "/", "--out", str(out))
    assert code == 0, err
    link = product_link(BASE, GTIN, serial, GHASH)
    assert link == f"{BASE}/01/{GTIN}/21/" + serial.replace("/", "%2F").replace("%x", "%25x") + f"?g={GHASH}"
    assert link in stdout
    (found,) = zxingcpp.read_barcodes(Image.open(out))
    assert found.format == zxingcpp.BarcodeFormat.QRCode and found.text == link


def test_product_qr_svg_and_json(tmp_path: Path) -> None:
    out = tmp_path / "p.svg"
    code, stdout, err = run("product", "qr", GTIN, "S1", "--base-url", BASE, "--out", str(out), "--json")
    assert code == 0, err
    assert json.loads(stdout) == {"link": f"{BASE}/01/{GTIN}/21/S1?g={GHASH}", "file": str(out)}
    assert out.read_text().lstrip().startswith(("<?xml", "<svg")) and "<path" in out.read_text()


def test_product_qr_refuses_bad_input(tmp_path: Path) -> None:
    code, _, err = run("product", "qr", "123", "S1", "--base-url", BASE, "--out", str(tmp_path / "a.png"))
    assert code == 2 and "GTIN" in err.upper()
    code, _, err = run("product", "qr", GTIN, "S1", "--base-url", BASE, "--out", str(tmp_path / "a.gif"))
    assert code == 2 and ".svg or .png" in err
    code, _, err = run("product", "qr", GTIN, "S1", "--base-url", "ftp://x", "--out", str(tmp_path / "a.png"))
    assert code == 2 and "base URL" in err
    assert not list(tmp_path.iterdir())


def test_ticket_link() -> None:
    tid = "ab" * 32
    code, stdout, err = run("ticket", "link", tid, "--base-url", BASE)
    assert code == 0 and stdout.strip() == f"{BASE}/t/{tid}?g={GHASH}" == ticket_link(BASE, bytes.fromhex(tid), GHASH), err
    code, stdout, _ = run("ticket", "link", tid, env={"AFTERCHAIN_LINK_BASE": "http://127.0.0.1:8001"})
    assert code == 0 and stdout.strip() == f"http://127.0.0.1:8001/t/{tid}?g={GHASH}"
    code, _, err = run("ticket", "link", "abc", "--base-url", BASE)
    assert code == 2 and "64 hex" in err


def test_links_carry_the_anchor_and_witnesses(tmp_path: Path, genesis_file: Path) -> None:
    other = tmp_path / "other.json"
    g2 = genesis()
    g2 = type(g2).from_json(g2.to_json().replace('"chain_id": "', '"chain_id": "x'))
    other.write_text(g2.to_json())
    tid = "ab" * 32
    code, stdout, err = run("ticket", "link", tid, "--base-url", BASE, "--genesis", str(other),
                            "--witness", "http://127.0.0.1:8002/", "--witness", "https://w.example")
    assert code == 0, err
    assert stdout.strip() == f"{BASE}/t/{tid}?g={g2.hash().hex()}&w=http://127.0.0.1:8002&w=https://w.example"
    assert g2.hash() != G.hash()
    code, _, err = run("ticket", "link", tid, "--base-url", BASE, "--witness", "ftp://w")
    assert code == 2 and "base URL" in err
    code, _, err = run("ticket", "link", tid, "--base-url", BASE, "--genesis", str(tmp_path / "missing.json"))
    assert code == 2 and "missing.json" in err
    with pytest.raises(Exception, match="genesis hash"):
        ticket_link(BASE, tid, "abc")
    # no genesis file and no node: the command says it has no node to ask
    genesis_file.unlink()
    code, _, err = run("ticket", "link", tid, "--base-url", BASE, env={"AFTERCHAIN_NODE": ""})
    assert code == 2 and "no node" in err


def test_light_defaults_to_the_local_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from afterchain.node.client.light import cli as light_cli
    from afterchain.node.client.light.client import default_state_path

    monkeypatch.setenv("AFTERCHAIN_CLUSTER_DIR", str(tmp_path))
    with pytest.raises(SystemExit):
        light_cli._node_url(None)
    (tmp_path / "network.json").write_text(json.dumps({"nodes": [{"api_port": 18001}, {"api_port": 18002}]}))
    (tmp_path / "genesis.json").write_text("{}")
    assert light_cli._node_url(None) == "http://127.0.0.1:18001"
    assert light_cli._node_url("http://x:1") == "http://x:1"
    assert light_cli._genesis_path(None) == str(tmp_path / "genesis.json")
    # the trusted state is per genesis: a network recreated under the same chain id gets a new file
    a, b = default_state_path("demo", b"\x01" * 32), default_state_path("demo", b"\x02" * 32)
    assert a != b and a.name == "demo-" + "01" * 8 + ".json"


def test_ticket_show_prints_readable_text(capsys: pytest.CaptureFixture[str]) -> None:
    from afterchain.node.client.cli.ticket import _show_ticket

    t = {"id": "ab" * 32, "status": "closed", "kind": "repair", "gtin": GTIN, "serial": "S1", "cust": "cd" * 32,
         "org": "fixit", "policy": "ef" * 32, "opened": 1_760_000_000_000, "ack": 1_760_000_600_000,
         "resolved": 1_760_003_600_000, "closed": 1_760_004_000_000, "fr_due": None, "res_due": None, "ac_due": None,
         "paused": None, "breaches": 1, "penalties": 2500, "escrow": None, "rating": [4, "12" * 32, 1_760_004_100_000],
         "reason": None, "resolution": "repaired", "notes": [],
         "hist": [["opened", 1_760_000_000_000, "aa" * 32, None],
                  ["escalated", 1_760_000_300_000, None, "breach:first_response;penalty:2500"],
                  ["acknowledged", 1_760_000_600_000, "bb" * 32, None], ["resolved", 1_760_003_600_000, "cc" * 32, None],
                  ["closed", 1_760_004_000_000, "dd" * 32, None]]}
    _show_ticket(t)
    out = capsys.readouterr().out
    assert "4 / 5, 2025-10-09" in out and "[4," not in out
    assert "missed (breach recorded 2025-10-09 08:58:20 UTC)" in out
    assert "met (resolved 2025-10-09 09:53:20 UTC)" in out
    assert "escrow" in out and "none" in out
