"""afterchain consensus: a PBFT replica as a pure state machine (no I/O, no clock)."""
