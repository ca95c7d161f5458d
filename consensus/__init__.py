"""afterchain consensus: a PBFT replica as a pure state machine (no I/O, no clock).

- `consensus.replica.Replica`: the state machine (`step`, `tick`, `propose`, `executed`,
  `deliver_block`, `ready`, `advance`); its module docstring is the protocol description.
- `consensus.safety.SafetyRules`: the safety checks a replica enforces (all of them, except
  in the simulator's mutation runs).
- `consensus.messages`: wire and WAL messages (tags 0x40-0x5F).
- `consensus.requests`: request timers (censorship resistance, the slow-primary rule).
- `consensus.params.ConsensusParams`: K, L, timeouts, block limits (genesis carries it).
- `consensus.app.Application`: the calls consensus makes into the application.
- `consensus.epochs`: which validator set votes on which height (`epoch_start`,
  `set_source_height`).
- `consensus.signer`: `Signer` / `Verifier` (Ed25519, or a fast fake for simulations).
- `consensus.sim`: the seeded fault simulator (``python -m afterchain.consensus.sim --help``).
"""
