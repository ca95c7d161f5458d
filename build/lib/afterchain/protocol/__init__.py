"""afterchain protocol layer: pure types, canonical encoding, signing, hashing and proofs.

No I/O, no clock, no randomness (other than key generation, which asks the OS for
entropy through PyNaCl). Everything here is a pure function of its arguments.
"""
