#!/bin/sh
# Lays out a demo network for docs/deploy/compose.yaml in /network (a volume): a key per
# node, the demo company's member key, genesis.json and one node.toml per node, peers by
# service name. Idempotent: an existing /network/genesis.json is kept as it is.
#   afterchain-init-network [CHAIN_ID]       (NETWORK_DIR=DIR: another directory than /network)
set -eu
out="${NETWORK_DIR:-/network}"
chain="${1:-afterchain-compose}"
validators="v1 v2 v3 v4"
members="m1"
if [ -f "$out/genesis.json" ]; then
  echo "network already laid out in $out"; exit 0
fi
umask 077
mkdir -p "$out/keys"
for n in $validators $members; do
  mkdir -p "$out/$n"
  afterchain keygen --out "$out/$n/node.key" >/dev/null
done
acme=$(afterchain keygen --out "$out/keys/acme.key")
vflags=""
for n in $validators; do vflags="$vflags --validator $(afterchain pubkey "$out/$n/node.key")"; done
# shellcheck disable=SC2086
afterchain genesis --chain-id "$chain" $vflags --member "acme,Acme Appliances,manufacturer,$acme,10000000" \
  --out "$out/genesis.json"
for n in $validators $members; do
  peers=""
  for p in $validators $members; do
    [ "$p" = "$n" ] && continue
    case "$n$p" in m*m*) continue ;; esac  # member nodes peer with the validators
    [ -n "$peers" ] && peers="$peers,"
    peers="$peers
  { key = \"$(afterchain pubkey "$out/$p/node.key")\", addr = \"$p:7001\" }"
  done
  cat > "$out/$n/node.toml" <<TOML
[node]
name = "$n"
data_dir = "/var/lib/afterchain"
key_file = "/network/$n/node.key"
genesis_file = "/network/genesis.json"

[p2p]
listen = "0.0.0.0:7001"
peers = [$peers
]

[api]
listen = "0.0.0.0:8001"

[log]
format = "json"
TOML
done
chmod -R go-rwx "$out"
echo "laid out $validators $members in $out (chain $chain)"
