"""The validator schedule: which validator set and consensus parameters are in force at
which height (the rule of `protocol.epochs`).

K = genesis checkpoint_interval; the set voting on height s is V(s) = ``meta/validators``
in the state after block ``set_source_height(s)``. After executing a block h with
h % K == 0 the ledger writes the adopted set and consensus parameters as the entry
effective from h+K+1 (state key ``sched/<first height:8>`` = {set, consensus, src: h},
encodings as msgpack bins), only when they differ from the previous entry; genesis writes
``sched/<1>``. So the schedule is in the state root, survives restarts (rebuilt from
``sched/`` on open) and re-execution. Answers are None while set_source_height(s) is above
the executed height.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import NamedTuple

from afterchain.node.app.state import State, unpack
from afterchain.protocol import state_keys as K
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import decode_as, encode
from afterchain.protocol.epochs import set_source_height
from afterchain.protocol.errors import require
from afterchain.protocol.genesis import ConsensusParams, Genesis

__all__ = ["Schedule", "ScheduleEntry"]


class ScheduleEntry(NamedTuple):
    first: int
    validators: ValidatorSet
    consensus: ConsensusParams
    validators_raw: bytes
    consensus_raw: bytes


class Schedule:
    """The committed schedule in memory (entries in height order), plus the entry the block
    being executed records (kept aside until the block commits)."""

    def __init__(self, st: State, genesis: Genesis) -> None:
        self._st = st
        self._k = genesis.consensus.checkpoint_interval
        self._entries = [ScheduleEntry(1, genesis.validators, genesis.consensus, encode(genesis.validators),
                                       encode(genesis.consensus))]
        self._firsts = [1]
        self._sets_by_hash = {genesis.validators.hash(): genesis.validators}
        self._pending: ScheduleEntry | None = None

    @property
    def last(self) -> ScheduleEntry:
        return self._entries[-1]

    def write_genesis(self) -> None:
        e = self._entries[0]
        self._st.put(K.schedule(1), {"set": e.validators_raw, "consensus": e.consensus_raw, "src": 0})

    def load(self) -> None:
        """Rebuild the schedule from the committed ``sched/`` state keys."""
        entries = []
        start = K.stored_value(K.SCHEDULE)
        for k, raw in self._st.scan(start, start[:-1] + b"0"):
            v = unpack(raw)
            vs_raw, cp_raw = bytes(v["set"]), bytes(v["consensus"])
            entries.append(ScheduleEntry(int.from_bytes(k[len(start):len(start) + 8], "big"), decode_as(ValidatorSet, vs_raw),
                                         decode_as(ConsensusParams, cp_raw), vs_raw, cp_raw))
        if not entries:  # a store written before governance kept a schedule: genesis only
            return
        require(entries[0].first == 1, "the validator schedule must start at height 1")
        self._entries, self._firsts = entries[:1], [1]
        self._sets_by_hash = {entries[0].validators.hash(): entries[0].validators}
        for e in entries[1:]:
            self._remember(e)

    def record(self, height: int, vs_raw: bytes, cp_raw: bytes) -> None:
        """At a checkpoint boundary `height`: the adopted set and consensus parameters (their
        encodings) become the entry effective from height + K + 1, if they differ from the last."""
        last = self._entries[-1]
        if vs_raw == last.validators_raw and cp_raw == last.consensus_raw:
            return
        first = height + self._k + 1
        self._st.put(K.schedule(first), {"set": vs_raw, "consensus": cp_raw, "src": height})
        self._pending = ScheduleEntry(first, decode_as(ValidatorSet, vs_raw), decode_as(ConsensusParams, cp_raw),
                                      vs_raw, cp_raw)

    def block_committed(self) -> None:
        if self._pending is not None:
            self._remember(self._pending)
            self._pending = None

    def block_aborted(self) -> None:
        self._pending = None

    def _remember(self, entry: ScheduleEntry) -> None:
        require(entry.first > self._entries[-1].first, "schedule entries must be added in height order")
        self._entries.append(entry)
        self._firsts.append(entry.first)
        self._sets_by_hash[entry.validators.hash()] = entry.validators

    def entry(self, height: int) -> ScheduleEntry | None:
        """The entry in force at `height` (None while its source block is not executed)."""
        if height < 1:
            return self._entries[0]
        if set_source_height(height, self._k) > self._st.height:
            return None
        return self._entries[max(0, bisect_right(self._firsts, height) - 1)]

    def validators_for(self, height: int) -> ValidatorSet | None:
        e = self.entry(height)
        return None if e is None else e.validators

    def consensus_params_for(self, height: int) -> ConsensusParams | None:
        e = self.entry(height)
        return None if e is None else e.consensus

    def validator_schedule(self) -> list[tuple[int, ValidatorSet]]:
        return [(e.first, e.validators) for e in self._entries]

    def consensus_schedule(self) -> list[tuple[int, ConsensusParams]]:
        return [(e.first, e.consensus) for e in self._entries]

    def validator_sets_by_hash(self) -> dict[bytes, ValidatorSet]:
        return dict(self._sets_by_hash)

    def pending_entry(self) -> tuple[int, ValidatorSet, ConsensusParams] | None:
        """(first height, set, consensus params) of the entry the next checkpoint boundary
        will write, if the committed adopted set or consensus parameters differ from the
        last entry; None if nothing is pending."""
        vs_raw = self._st.value(K.META_VALIDATORS)
        cp_raw = self._st.value(K.META_CONSENSUS)
        last = self._entries[-1]
        vs = last.validators_raw if vs_raw is None else bytes(unpack(vs_raw))
        cp = last.consensus_raw if cp_raw is None else bytes(unpack(cp_raw))
        if vs == last.validators_raw and cp == last.consensus_raw:
            return None
        boundary = (self._st.height // self._k + 1) * self._k
        return boundary + self._k + 1, decode_as(ValidatorSet, vs), decode_as(ConsensusParams, cp)
