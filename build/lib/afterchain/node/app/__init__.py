"""The after-sales ledger: the deterministic application every node executes.

`node.ledger.hooks` is the interface to service-agreement contracts; `node.ledger.ledger`
the state machine (`Ledger`); `node.ledger.codes` the rejection reason codes.
"""
