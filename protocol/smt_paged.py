"""The sparse Merkle tree of `protocol.smt` in a paged store (prototype, issue 27 point 4).

Same tree, same hashes, roots and proofs (`SmtProof`, `verify_smt_proof`): only the
records in the `NodeStore` differ. `protocol.smt.SparseMerkleTree` stores one record per
binary node (~22 per key path at 1M keys); this tree stores one record per *page*, a
`LEVELS`-level slice of the binary tree, so a walk from the root costs ~depth / LEVELS
lookups and a block writes ~depth / LEVELS records per key. Hashing stays binary: one
SHA-256 per new node, as before.

Records (keyed by the hash of the binary node they start with, like the nodes of
`protocol.smt`):

- **leaf record**: a leaf whose depth is a multiple of `LEVELS` (the root, or the root of
  a child slot of a page): 65 bytes ``0x00 || path || value_hash``, the leaf's hash
  preimage, exactly as in `protocol.smt`;
- **page**: an inner node at a depth d that is a multiple of `LEVELS`, with the binary
  nodes below it down to depth d + LEVELS - 1 (heap positions: the top is position 1, the
  children of position p are 2p and 2p + 1; positions 1..15 for LEVELS = 4). Fixed
  offsets, at most `PAGE_BYTES` (976) bytes:

  - byte 0: `PAGE_TAG` (0x02);
  - bytes p = 1..15: the kind of position p: 0 leaf, 1 inner, 2 empty or not in the tree
    (below a leaf or an empty node);
  - from byte 16, 64 bytes per position p (at 16 + 64 (p - 1)), its *body*: for an inner
    node ``left_hash || right_hash`` (so ``0x01 || body`` is its hash preimage), for a
    leaf ``path || value_hash`` (``0x00 || body``), 64 zero bytes otherwise.

  So the hash of position q >= 2 is the 32-byte slot at 16 + 32 (q - 2) (a half of its
  parent's body), and the slots of positions 16..31 are the roots of the child records
  (a page, a leaf record, or `EMPTY_HASH`). The top is always an inner node (a subtree
  holding one key is a leaf record instead). The record is cut after the body of the last
  position in the tree (16 + 64 p bytes for p the highest such position; the cut-off tail
  reads as zeros): a page of the sparse lower levels (often an inner node and two leaves,
  208 bytes) does not carry 976 bytes. The encoding of a page is a function of its top
  hash: positions not in the tree are all zero and the cut is canonical.

`update` hashes each new binary node once, like `protocol.smt`, and writes each touched
page once per batch with one `put_many`. `stale` lists the old records (pages and leaf
records) the new tree no longer holds.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from hashlib import sha256 as _sha256

from .errors import InvariantError, require
from .smt import DEPTH_BITS, EMPTY_HASH, MAX_KEY_BYTES, SmtProof, TreeView, _check_key
from .types import Hash32

__all__ = ["LEVELS", "PAGE_BYTES", "PAGE_TAG", "PagedSparseMerkleTree", "check_record", "page_records"]

LEVELS = 4
"""Binary levels per page."""
_SLOTS = 1 << LEVELS
"""Positions 1.._SLOTS-1 are in the page; _SLOTS..2*_SLOTS-1 are the roots of child records."""
_HDR = _SLOTS
"""Tag byte, then one kind byte per position."""
PAGE_BYTES = _HDR + (_SLOTS - 1) * 64
PAGE_TAG = 0x02

_LEAF = 0
_INNER = 1
_EMPTY = 2
_LEAF_PREFIX = b"\x00"
_INNER_PREFIX = b"\x01"
_LEAF_BYTES = 65
_TOP_BIT = DEPTH_BITS - 1
_ZERO64 = bytes(64)
_ZERO_PAGE = bytes(PAGE_BYTES)
_EMPTY_PAGE = bytes([PAGE_TAG]) + bytes([_EMPTY]) * (_SLOTS - 1) + bytes(PAGE_BYTES - _SLOTS)

_SLOT_AT = (0, 0, *(_HDR + (pos - 2) * 32 for pos in range(2, 2 * _SLOTS)))
"""Offset of each position's hash (pos >= 2) in a page."""
_NIB_MASK = _SLOTS - 1
_TRAILS = tuple(tuple((1 << s) | (nib >> (LEVELS - s)) for s in range(LEVELS + 1)) for nib in range(_SLOTS))
"""The positions a path passes in a page, top first (then the child slot), by the path's
LEVELS bits there."""
_SLOT_OFFSETS = tuple(tuple(_SLOT_AT[pos] for pos in trail[1:]) for trail in _TRAILS)
"""The offsets of the hashes of a path's positions below the top (then the child slot), by
the path's LEVELS bits in the page."""
assert LEVELS == 4  # `_one` checks a page's levels 1..3 in one expression and rehashes 4 levels unrolled

_Item = tuple[int, bytes, bytes | None]
"""(path as an int, path, value hash or None for a delete), sorted by path."""
_Result = tuple[bytes, int | None, bytes | None]
"""A subtree after an update: (hash, kind, leaf body); kind None = unchanged (not looked
up), the body (``path || value_hash``) only when kind is a leaf."""


def _body(pos: int) -> int:
    """Offset of position `pos`'s 64-byte body in a page."""
    return _HDR + (pos - 1) * 64


def _slot(pos: int) -> int:
    """Offset of position `pos`'s hash (pos >= 2) in a page: a half of its parent's body."""
    return _HDR + (pos - 2) * 32


def page_records(get: Callable[[bytes], bytes | None], root: bytes) -> set[bytes]:
    """Hashes of every record the tree at `root` holds (`get`: hash -> record or None).

    For tests and tools: a full walk."""
    seen: set[bytes] = set()
    todo = [root]
    while todo:
        h = todo.pop()
        if h == EMPTY_HASH or h in seen:
            continue
        rec = get(h)
        if rec is None:
            raise InvariantError(f"SMT record {h.hex()} missing from the store")
        seen.add(h)
        if rec[0] == PAGE_TAG:
            for pos in range(_SLOTS // 2, _SLOTS):
                if rec[pos] == _INNER:
                    o = _body(pos)
                    todo += (rec[o:o + 32], rec[o + 32:o + 64])
    return seen


def check_record(key: bytes, rec: bytes) -> bool:
    """True iff `rec` is a canonical record stored under `key`: a leaf record whose hash is
    `key`, or a page whose top hash is `key`, every position's hash matching its parent's
    slot, positions not in the tree zero, the cut after the last position in the tree, and
    no inner node in the page that the compact rules forbid (both children empty, or one
    empty and the other a leaf in the page). A child record (positions 16-31) is checked
    on its own; whether an inner node over it with an empty sibling is canonical depends on
    its kind (a leaf record there would have moved up). Pure and total: never raises.

    For a store filled from elsewhere (state sync, snapshots): the tree itself trusts its
    store and checks only the shape of what it reads."""
    try:
        return _check_record(key, rec)
    except (TypeError, ValueError, IndexError):
        return False


def _check_record(key: bytes, rec: bytes) -> bool:
    if type(key) is not bytes or type(rec) is not bytes or len(key) != 32 or not rec:
        return False
    if rec[0] == _LEAF:
        return len(rec) == _LEAF_BYTES and _sha256(rec).digest() == key
    n = len(rec)
    if rec[0] != PAGE_TAG or not _HDR < n <= PAGE_BYTES or (n - _HDR) & 63 or rec[1] != _INNER:
        return False
    page = rec + _ZERO_PAGE[n:]
    if any(k > _EMPTY for k in page[1:_SLOTS]) or page[_SLOTS:_HDR].strip(b"\0"):
        return False
    if _sha256(_INNER_PREFIX + page[_HDR:_HDR + 64]).digest() != key:
        return False
    in_tree = {1}
    for pos in range(1, _SLOTS):  # parents before children (heap order)
        kind = page[pos]
        o = _HDR + (pos - 1) * 64
        if pos not in in_tree:
            if kind != _EMPTY or page[o:o + 64] != _ZERO64:
                return False
            continue
        if kind == _EMPTY:
            if page[o:o + 64] != _ZERO64:
                return False
            continue
        if kind == _LEAF:
            continue
        if 2 * pos >= _SLOTS:  # children are records: both empty is not canonical
            if page[o:o + 64] == _ZERO64:
                return False
            continue
        kinds = []
        for c in (2 * pos, 2 * pos + 1):
            in_tree.add(c)
            kc = page[c]
            slot = page[_SLOT_AT[c]:_SLOT_AT[c] + 32]
            if kc == _EMPTY:
                if slot != EMPTY_HASH:
                    return False
            else:
                prefix = _LEAF_PREFIX if kc == _LEAF else _INNER_PREFIX
                oc = _HDR + (c - 1) * 64
                if _sha256(prefix + page[oc:oc + 64]).digest() != slot:
                    return False
            kinds.append(kc)
        if kinds in ([_EMPTY, _EMPTY], [_EMPTY, _LEAF], [_LEAF, _EMPTY]):
            return False
    return max(pos for pos in range(1, _SLOTS) if page[pos] != _EMPTY) == (n - _HDR) // 64


class PagedSparseMerkleTree(TreeView):
    """A view of the tree at `root` over a store of pages; `update` moves it to a new root.

    Same API as `protocol.smt.SparseMerkleTree` (get, prove, update, root, store)."""

    __slots__ = ()

    def _load(self, h: bytes) -> bytes:
        rec = self._get(h)
        if rec is None:
            raise InvariantError(f"SMT record {h.hex()} missing from the store")
        n = len(rec)
        if not ((rec[0] == PAGE_TAG and _HDR < n <= PAGE_BYTES and not (n - _HDR) & 63) or (n == _LEAF_BYTES and rec[0] == _LEAF)):
            raise InvariantError(f"SMT record {h.hex()} is not a page or a leaf")
        return rec

    # ------------------------------------------------------------------ reads

    def get(self, key: bytes) -> bytes | None:
        """The value hash (SHA-256 of the value) stored for `key`, or None."""
        path = _sha256(_check_key(key)).digest()
        bits = format(int.from_bytes(path, "big"), "0256b")
        h = self._root
        depth = 0
        while h != EMPTY_HASH:
            rec = self._load(h)
            if rec[0] == _LEAF:
                return rec[33:65] if rec[1:33] == path else None
            pos = 1
            while pos < _SLOTS:
                kind = rec[pos]
                if kind != _INNER:
                    if kind == _EMPTY:
                        return None
                    o = _body(pos)
                    return rec[o + 32:o + 64] if rec[o:o + 32] == path else None
                pos = 2 * pos + (bits[depth] == "1")
                depth += 1
            o = _slot(pos)
            h = rec[o:o + 32]
        return None

    def prove(self, key: bytes) -> SmtProof:
        """A proof of `key`'s value hash (membership) or of its absence."""
        path = _sha256(_check_key(key)).digest()
        bits = format(int.from_bytes(path, "big"), "0256b")
        h = self._root
        depth = 0
        bitmap = 0
        siblings: list[Hash32] = []
        leaf: bytes | None = None  # the terminal leaf's body
        while h != EMPTY_HASH:
            rec = self._load(h)
            if rec[0] == _LEAF:
                leaf = rec[1:65]
                break
            pos = 1
            while pos < _SLOTS:
                kind = rec[pos]
                if kind != _INNER:
                    if kind == _LEAF:
                        leaf = rec[_body(pos):_body(pos) + 64]
                    break
                require(depth < DEPTH_BITS, "SMT deeper than 256 levels")
                pos = 2 * pos + (bits[depth] == "1")
                o = _slot(pos ^ 1)
                sib = rec[o:o + 32]
                if sib != EMPTY_HASH:
                    bitmap |= 1 << (_TOP_BIT - depth)
                    siblings.append(Hash32(sib))
                depth += 1
            else:
                o = _slot(pos)
                h = rec[o:o + 32]
                continue
            break
        leaf_path = leaf_value = None
        if leaf is not None and leaf[:32] != path:
            leaf_path, leaf_value = Hash32(leaf[:32]), Hash32(leaf[32:])
        nbytes = (depth + 7) // 8
        bm = (bitmap >> (DEPTH_BITS - nbytes * 8)).to_bytes(nbytes, "big") if nbytes else b""
        return SmtProof(depth=depth, bitmap=bm, siblings=tuple(siblings), leaf_path=leaf_path, leaf_value_hash=leaf_value)

    # ------------------------------------------------------------------ writes

    def update(self, items: Mapping[bytes, bytes | None], *, stale: list[bytes] | None = None) -> bytes:
        """Apply a batch (key -> value, or None to delete) and return the new root.

        As `protocol.smt.SparseMerkleTree.update`; `stale` receives the records (pages and
        leaf records) of the old tree that the new tree no longer holds, each once."""
        if not items:
            return self._root
        batch: list[_Item] = []
        append = batch.append
        sha = _sha256
        from_bytes = int.from_bytes
        for key, value in items.items():
            if type(key) is not bytes or len(key) > MAX_KEY_BYTES:
                _check_key(key)
            path = sha(key).digest()
            append((from_bytes(path, "big"), path, None if value is None else sha(value).digest()))
        batch.sort()
        out: dict[bytes, bytes] = {}
        self._stale = [] if stale is not None else None
        try:
            root, kind, body = self._sub(self._root, 0, batch, 0, len(batch), out)
            if kind == _LEAF:
                out[root] = _LEAF_PREFIX + body  # type: ignore[operator]
            if stale is not None:
                # a record rebuilt with the same content is in `out`: it stays
                stale.extend(h for h in dict.fromkeys(self._stale) if h not in out)  # type: ignore[arg-type]
        finally:
            self._stale = None
        if out:
            self._store.put_many(out)
        self._root = root
        return root

    def _sub(self, h: bytes, depth: int, items: list[_Item], lo: int, hi: int, out: dict[bytes, bytes]) -> _Result:
        """Update the subtree at `depth` (a multiple of LEVELS) whose record is `h`."""
        if h == EMPTY_HASH:
            live = [it for it in items[lo:hi] if it[2] is not None]
            if not live:
                return h, None, None
            return self._build_sub(depth, live, 0, len(live), out)
        rec = self._load(h)
        if rec[0] == _LEAF:
            merged = _merge(rec[1:33], rec[33:65], items, lo, hi)
            result = self._build_sub(depth, merged, 0, len(merged), out)
            if result[0] == h:
                return h, None, None  # same leaf: unchanged (if it moves up, `_join` lists it)
            if self._stale is not None:
                self._stale.append(h)
            return result
        if hi - lo == 1 and items[lo][2] is not None:
            return self._one(rec, 1, depth, h, items[lo], out, False)
        buf = _open(rec)
        result = self._node(buf, 1, depth, h, items, lo, hi, out)
        new = result[0]
        if new == h:
            return h, None, None
        if self._stale is not None:
            self._stale.append(h)
        if result[1] == _INNER:
            out[new] = _seal(buf)
        return result

    def _build_sub(self, depth: int, items: list[_Item], lo: int, hi: int, out: dict[bytes, bytes]) -> _Result:
        """A fresh subtree at `depth` (a multiple of LEVELS) holding items[lo:hi] (all with
        values). A leaf result gets no record here: the caller writes it where it stays."""
        n = hi - lo
        if n == 0:
            return EMPTY_HASH, _EMPTY, None
        if n == 1:
            _, path, value_hash = items[lo]
            body = path + value_hash  # type: ignore[operator]
            return _sha256(_LEAF_PREFIX + body).digest(), _LEAF, body
        buf = bytearray(_EMPTY_PAGE)
        result = self._build_node(buf, 1, depth, items, lo, hi, out)
        out[result[0]] = _seal(buf)
        return result

    def _node(self, buf: bytearray, pos: int, depth: int, h: bytes, items: list[_Item], lo: int, hi: int,
              out: dict[bytes, bytes]) -> _Result:
        """Update position `pos` (hash `h`, at `depth`) of the page in `buf`, writing its
        new state (and its descendants' in the page) into `buf`."""
        kind = buf[pos]
        o = _HDR + (pos - 1) * 64
        if kind == _EMPTY:
            live = [it for it in items[lo:hi] if it[2] is not None]
            if not live:
                return h, None, None
            return self._build_node(buf, pos, depth, live, 0, len(live), out)
        if kind == _LEAF:
            merged = _merge(bytes(buf[o:o + 32]), bytes(buf[o + 32:o + 64]), items, lo, hi)
            buf[pos] = _EMPTY
            buf[o:o + 64] = _ZERO64
            return self._build_node(buf, pos, depth, merged, 0, len(merged), out)
        if hi - lo == 1 and items[lo][2] is not None:
            return self._one(buf, pos, depth, h, items[lo], out, True)
        if depth >= DEPTH_BITS:
            raise InvariantError("SMT deeper than 256 levels")
        shift = _TOP_BIT - depth
        boundary = ((items[lo][0] >> (shift + 1)) << (shift + 1)) | (1 << shift)
        mid = bisect_left(items, (boundary,), lo, hi)
        left = bytes(buf[o:o + 32])
        right = bytes(buf[o + 32:o + 64])
        c = 2 * pos
        lr: _Result = (left, None, None)
        rr: _Result = (right, None, None)
        if c < _SLOTS:  # (one key set below an inner child: straight to `_one`)
            if mid > lo:
                if mid - lo == 1 and buf[c] == _INNER and items[lo][2] is not None:
                    lr = self._one(buf, c, depth + 1, left, items[lo], out, True)
                else:
                    lr = self._node(buf, c, depth + 1, left, items, lo, mid, out)
            if hi > mid:
                if hi - mid == 1 and buf[c + 1] == _INNER and items[mid][2] is not None:
                    rr = self._one(buf, c + 1, depth + 1, right, items[mid], out, True)
                else:
                    rr = self._node(buf, c + 1, depth + 1, right, items, mid, hi, out)
        else:
            if mid > lo:
                lr = self._sub(left, depth + 1, items, lo, mid, out)
            if hi > mid:
                rr = self._sub(right, depth + 1, items, mid, hi, out)
        nl = lr[0]
        nr = rr[0]
        if nl == left and nr == right:
            return h, None, None
        if EMPTY_HASH in (nl, nr):
            return self._join(buf, pos, lr, rr, out)
        if c >= _SLOTS:  # leaves that stay in child slots need their records
            if lr[1] == _LEAF:
                out[nl] = _LEAF_PREFIX + lr[2]  # type: ignore[operator]
            if rr[1] == _LEAF:
                out[nr] = _LEAF_PREFIX + rr[2]  # type: ignore[operator]
        body = nl + nr
        buf[o:o + 64] = body
        return _sha256(_INNER_PREFIX + body).digest(), _INNER, None

    def _one(self, page: bytes | bytearray, pos: int, depth: int, top: bytes, item: _Item, out: dict[bytes, bytes],
             own: bool) -> _Result:
        """`_node` / `_sub` for one key set to a value, below an inner node: walk down, then
        rehash the path upward (no collapse can happen: every node passed keeps its keys).

        The inner node is position `pos` (hash `top`, at `depth`) of `page`: the caller's
        page buffer when `own` (written in place, no record), else the stored page `top`
        (pos 1; its new version is written to `out`, the old one listed as stale). Most of a
        block's work is here, so the loops avoid calls they do not need: in each page the
        key's positions come from a table indexed by its path's LEVELS bits there, and a
        page whose LEVELS levels are all inner on the path (the common case) is passed
        with one check and rebuilt with one join of slices of the old page."""
        path_int, path, vh = item
        value_hash: bytes = vh  # type: ignore[assignment]  # not None: the callers check
        get = self._get
        stale = self._stale
        trails = _TRAILS
        slot_at = _SLOT_AT
        segs: list[tuple[bytes | bytearray, bytes, int, int, int]] = []  # (page, key, path bits there, entry, exit)
        key = top
        r = pos.bit_length() - 1  # level of `pos` in its page
        top_depth = depth - r
        term: bytearray | None = None  # the last page's buffer when the terminal is inside it
        h = top
        try:
            while True:
                nib = (path_int >> (_TOP_BIT - top_depth - LEVELS + 1)) & _NIB_MASK
                t = trails[nib]
                if page[t[1]] & page[t[2]] & page[t[3]] == _INNER:  # LEVELS == 4: every level inner on the path
                    segs.append((page, key, nib, r, LEVELS))
                    o = slot_at[t[LEVELS]]
                    h = page[o:o + 32] if type(page) is bytes else bytes(page[o:o + 32])
                    top_depth += LEVELS
                    if h == EMPTY_HASH:
                        rec: bytes = _LEAF_PREFIX + path + value_hash
                        new = _sha256(rec).digest()
                        out[new] = rec
                        break
                    rec = get(h)  # type: ignore[assignment]  # None: the TypeError below
                    if rec[0] != PAGE_TAG:  # a leaf record
                        if len(rec) != _LEAF_BYTES or rec[0] != _LEAF:
                            raise InvariantError(f"SMT record {h.hex()} is not a page or a leaf")
                        if rec[1:33] == path:
                            if rec[33:65] == value_hash:
                                return top, None, None
                            rec = _LEAF_PREFIX + path + value_hash
                            new = _sha256(rec).digest()
                            out[new] = rec
                        else:
                            other = rec[1:33]
                            merged = sorted((item, (int.from_bytes(other, "big"), other, rec[33:65])))
                            new = self._build_sub(top_depth, merged, 0, 2, out)[0]
                        if stale is not None:
                            stale.append(h)
                        break
                    if (len(rec) - _HDR) & 63:
                        raise InvariantError(f"SMT record {h.hex()} is not a page or a leaf")
                    page, key, r = rec, h, 0
                    continue
                s = r + 1
                while page[t[s]] == _INNER:
                    s += 1
                segs.append((page, key, nib, r, s))
                pos = t[s]  # the terminal: empty, or a leaf
                o = _HDR + (pos - 1) * 64
                term = page if own and len(segs) == 1 else _open(page)  # type: ignore[assignment,arg-type]
                if page[pos] == _EMPTY:
                    body = path + value_hash
                    term[pos] = _LEAF  # type: ignore[index]
                    term[o:o + 64] = body  # type: ignore[index]
                    new = _sha256(_LEAF_PREFIX + body).digest()
                elif page[o:o + 32] == path:
                    if page[o + 32:o + 64] == value_hash:
                        return top, None, None
                    term[o + 32:o + 64] = value_hash  # type: ignore[index]
                    new = _sha256(_LEAF_PREFIX + path + value_hash).digest()
                else:
                    other = bytes(page[o:o + 32])
                    merged = sorted((item, (int.from_bytes(other, "big"), other, bytes(page[o + 32:o + 64]))))
                    term[pos] = _EMPTY  # type: ignore[index]
                    term[o:o + 64] = _ZERO64  # type: ignore[index]
                    new = self._build_node(term, pos, top_depth + s, merged, 0, 2, out)[0]  # type: ignore[arg-type]
                break
        except (TypeError, IndexError):
            raise InvariantError(f"SMT record {h.hex()} missing from the store (or a path deeper than 256)") from None
        sha = _sha256
        prefix = _INNER_PREFIX
        last = len(segs) - 1
        offsets = _SLOT_OFFSETS
        for i in range(last, -1, -1):
            page, key, nib, r, e = segs[i]
            if i == last and term is not None:
                b = term
            elif i == 0 and own:
                b = page  # type: ignore[assignment]
            else:
                # A stored page passed through from its top to a child slot: its new version
                # is the old one with the path's 4 slots replaced. The slot of a right child
                # (odd position) has bit 5 of its offset set; its sibling is 32 bytes before.
                o1, o2, o3, o4 = offsets[nib]
                h4 = new
                new = (sha(prefix + page[o4 - 32:o4] + h4) if o4 & 32 else sha(prefix + h4 + page[o4 + 32:o4 + 64])).digest()
                h3 = new
                new = (sha(prefix + page[o3 - 32:o3] + h3) if o3 & 32 else sha(prefix + h3 + page[o3 + 32:o3 + 64])).digest()
                h2 = new
                new = (sha(prefix + page[o2 - 32:o2] + h2) if o2 & 32 else sha(prefix + h2 + page[o2 + 32:o2 + 64])).digest()
                h1 = new
                new = (sha(prefix + page[o1 - 32:o1] + h1) if o1 & 32 else sha(prefix + h1 + page[o1 + 32:o1 + 64])).digest()
                out[new] = b"".join((page[:o1], h1, page[o1 + 32:o2], h2, page[o2 + 32:o3], h3, page[o3 + 32:o4], h4,
                                     page[o4 + 32:]))
                if stale is not None:
                    stale.append(key)
                continue
            t = trails[nib]
            for j in range(e, r, -1):
                o = slot_at[t[j]]
                b[o:o + 32] = new
                o = _HDR + (t[j - 1] - 1) * 64
                new = sha(prefix + b[o:o + 64]).digest()
            if i or not own:
                out[new] = _seal(b)
                if stale is not None:
                    stale.append(key)
        return new, _INNER, None

    def _child_leaf(self, buf: bytearray, c: int, h: bytes) -> bytes | None:
        """The body of the unchanged child at position `c` if it is a leaf, else None."""
        if c < _SLOTS:
            if buf[c] != _LEAF:
                return None
            o = _body(c)
            return bytes(buf[o:o + 64])
        rec = self._load(h)
        if rec[0] != _LEAF:
            return None
        if self._stale is not None:
            self._stale.append(h)  # the leaf moves up into the page: its record goes (unless rewritten)
        return rec[1:65]

    def _join(self, buf: bytearray, pos: int, lr: _Result, rr: _Result, out: dict[bytes, bytes]) -> _Result:
        """Position `pos` once its children are `lr` and `rr` (compact rules), into `buf`."""
        c = 2 * pos
        o = _HDR + (pos - 1) * 64
        left, right = lr[0], rr[0]
        moved: _Result | None = None
        if left == EMPTY_HASH:
            if right == EMPTY_HASH:
                moved = (EMPTY_HASH, _EMPTY, None)
            else:
                body = rr[2] if rr[1] is not None else self._child_leaf(buf, c + 1, right)
                if body is not None:
                    moved = (right, _LEAF, body)
        elif right == EMPTY_HASH:
            body = lr[2] if lr[1] is not None else self._child_leaf(buf, c, left)
            if body is not None:
                moved = (left, _LEAF, body)
        if moved is not None:  # nothing, or one leaf: it moves up to `pos`
            _clear_below(buf, pos)
            if moved[1] == _LEAF:
                buf[pos] = _LEAF
                buf[o:o + 64] = moved[2]  # type: ignore[assignment]
            else:
                buf[pos] = _EMPTY
                buf[o:o + 64] = _ZERO64
            return moved
        if c >= _SLOTS:  # leaves that stay in child slots need their records
            if lr[1] == _LEAF:
                out[left] = _LEAF_PREFIX + lr[2]  # type: ignore[operator]
            if rr[1] == _LEAF:
                out[right] = _LEAF_PREFIX + rr[2]  # type: ignore[operator]
        body = left + right
        buf[pos] = _INNER
        buf[o:o + 64] = body
        return _sha256(_INNER_PREFIX + body).digest(), _INNER, None

    def _build_node(self, buf: bytearray, pos: int, depth: int, items: list[_Item], lo: int, hi: int,
                    out: dict[bytes, bytes]) -> _Result:
        """A fresh subtree at position `pos` of the page in `buf` (cleared there) holding
        items[lo:hi] (all with values)."""
        n = hi - lo
        if n == 0:
            return EMPTY_HASH, _EMPTY, None
        o = _HDR + (pos - 1) * 64
        if n == 1:
            _, path, value_hash = items[lo]
            body = path + value_hash  # type: ignore[operator]
            buf[pos] = _LEAF
            buf[o:o + 64] = body
            return _sha256(_LEAF_PREFIX + body).digest(), _LEAF, body
        require(depth < DEPTH_BITS, "two keys with the same path")
        shift = _TOP_BIT - depth
        boundary = ((items[lo][0] >> (shift + 1)) << (shift + 1)) | (1 << shift)
        mid = bisect_left(items, (boundary,), lo, hi)
        c = 2 * pos
        if c < _SLOTS:
            lr = self._build_node(buf, c, depth + 1, items, lo, mid, out)
            rr = self._build_node(buf, c + 1, depth + 1, items, mid, hi, out)
        else:
            lr = self._build_sub(depth + 1, items, lo, mid, out)
            rr = self._build_sub(depth + 1, items, mid, hi, out)
        # two or more keys: one side holds them all (an inner node) or both hold some, so
        # `_join` moves nothing up; it writes the inner node and its child leaves' records
        return self._join(buf, pos, lr, rr, out)


def _merge(path: bytes, value_hash: bytes, items: list[_Item], lo: int, hi: int) -> list[_Item]:
    """items[lo:hi] with values, plus the stored leaf (path, value_hash) unless the batch
    sets or deletes its key."""
    leaf_int = int.from_bytes(path, "big")
    merged: list[_Item] = []
    replaced = False
    for it in items[lo:hi]:
        if it[0] == leaf_int:
            replaced = True
        if it[2] is not None:
            merged.append(it)
    if not replaced:
        merged.append((leaf_int, path, value_hash))
        merged.sort()
    return merged


def _open(page: bytes) -> bytearray:
    """A stored page as a full-length buffer to edit (its cut-off tail is zeros)."""
    buf = bytearray(page)
    if len(buf) < PAGE_BYTES:
        buf += _ZERO_PAGE[len(buf):]
    return buf


def _seal(buf: bytearray) -> bytes:
    """The stored form of an edited page: cut after the body of its last position in the tree."""
    return bytes(buf[:_HDR + 64 * len(buf[1:_SLOTS].rstrip(b"\x02"))])


def _clear_below(buf: bytearray, pos: int) -> None:
    """Mark every position below `pos` in the page as not in the tree."""
    a, b = 2 * pos, 2 * pos + 2
    while a < _SLOTS:
        buf[a:b] = bytes([_EMPTY]) * (b - a)
        buf[_body(a):_body(b)] = bytes(64 * (b - a))
        a, b = 2 * a, 2 * b
