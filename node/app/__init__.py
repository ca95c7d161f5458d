"""The after-sales application: the deterministic ledger every node executes.

`ledger` is the facade (`Ledger`); `state` the state-access layer; one module per domain
(`orgs`, `products`, `policies`, `lifecycle`, `tickets`, `sla`, `returns`, `quality`,
`governance`, `schedule`, `evidence`) and `queries` for reads; `hooks` the interface to
service-agreement contracts and `vm` their VMs; `codes` the rejection reason codes.
Imports only `protocol`, `node.common` and its own modules.
"""
