"""afterchain node: the trio I/O shell around the consensus core and the ledger."""
