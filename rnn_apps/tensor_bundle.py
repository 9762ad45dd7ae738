"""Read TensorFlow 2 checkpoint bundles (a SavedModel's ``variables/``) with Python and NumPy only.

A bundle with prefix ``P`` is an index file ``P.index`` and data shards ``P.data-SSSSS-of-NNNNN``.

* The index is a LevelDB-style sorted table (TensorFlow's ``tsl/lib/io/table_builder.cc``): data blocks,
  a meta-index block and an index block, then a 48-byte footer holding the meta-index and index block
  handles (varint64 offset and size each, zero-padded to 40 bytes) and the magic number
  ``0xdb4775248b80fb57`` (little-endian). Each block is followed by a 5-byte trailer: the compression type
  (0 none, 1 snappy) and a masked CRC-32C of the block and that byte. A block holds prefix-compressed
  entries (varint32 shared, non-shared and value lengths, the key's new bytes, the value), then the
  restart offsets (uint32 each) and their count (uint32).
* Each value is a serialized ``BundleEntryProto`` (``tensor_bundle.proto``): dtype (1), shape (2), shard_id
  (3), offset (4), size (5), crc32c (6, fixed32, masked) and slices (7). The entry of key ``""`` is the
  ``BundleHeaderProto``: num_shards (1), endianness (2), version (3).
* A tensor's bytes lie at ``[offset, offset + size)`` of its shard: the raw little-endian array, or for
  strings the varint64 lengths, a masked CRC-32C of the lengths (4 bytes) and then the bytes.

Only what TensorFlow writes by default is supported (uncompressed tables, whole tensors, little-endian);
anything else raises :class:`BundleError` with a message naming what is unsupported.

    reader = BundleReader("models/poetry/13/variables/variables")
    reader.keys()                      # like [k for k, _ in tf.train.list_variables(prefix)]
    reader.get_tensor("model_weights/0/.ATTRIBUTES/VARIABLE_VALUE")   # like load_checkpoint(p).get_tensor
"""

from __future__ import annotations

import functools
import os
import struct
from typing import Dict, List, Optional, Tuple

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # two BlockHandles of at most 10 + 10 bytes each, padded to 40, then the 8-byte magic
BLOCK_TRAILER_SIZE = 5
NO_COMPRESSION, SNAPPY_COMPRESSION = 0, 1

# TensorFlow DataType enum (types.proto) -> NumPy dtype; DT_STRING (7) is handled apart.
DTYPES = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}
DT_STRING = 7
DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 8: "complex64",
               9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128", 19: "float16", 20: "resource",
               21: "variant", 22: "uint32", 23: "uint64"}


class BundleError(ValueError):
    """A checkpoint bundle that cannot be read: missing, truncated, corrupted or of an unsupported kind."""


# ----------------------------------------------------------------------------------------- CRC-32C

@functools.lru_cache(maxsize=1)
def _crc_table():
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, extending ``crc`` (pure Python: fine for index blocks, slow for MBs)."""
    table = _crc_table()
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """LevelDB's masked CRC (as stored in tables and bundle entries)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------- varints and protos

def _varint(buf: bytes, pos: int, end: int, what: str) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise BundleError(f"Truncated varint in {what}.")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BundleError(f"Malformed varint in {what}.")


def _proto_fields(buf: bytes, what: str) -> List[Tuple[int, int, object]]:
    """(field number, wire type, value) of a serialized protocol buffer (ints for varints/fixed, bytes else)."""
    out, pos, end = [], 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos, end, what)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end, what)
        elif wire == 1:
            if pos + 8 > end:
                raise BundleError(f"Truncated field {field} in {what}.")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos, end, what)
            if pos + n > end:
                raise BundleError(f"Truncated field {field} in {what}.")
            value = bytes(buf[pos : pos + n])
            pos += n
        elif wire == 5:
            if pos + 4 > end:
                raise BundleError(f"Truncated field {field} in {what}.")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise BundleError(f"Unsupported wire type {wire} (field {field}) in {what}.")
        out.append((field, wire, value))
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


class Entry:
    """A parsed ``BundleEntryProto``."""

    __slots__ = ("dtype", "shape", "shard_id", "offset", "size", "crc32c", "has_slices")

    def __init__(self, key: str, value: bytes):
        self.dtype, self.shape, self.shard_id, self.offset, self.size = 0, (), 0, 0, 0
        self.crc32c: Optional[int] = None
        self.has_slices = False
        what = f"the index entry of {key!r}"
        for field, wire, v in _proto_fields(value, what):
            if field == 1 and wire == 0:
                self.dtype = v
            elif field == 2 and wire == 2:
                dims = []
                for f2, w2, d in _proto_fields(v, what):
                    if f2 == 2 and w2 == 2:
                        size = 0
                        for f3, w3, s in _proto_fields(d, what):
                            if f3 == 1 and w3 == 0:
                                size = _signed(s)
                        dims.append(size)
                    elif f2 == 3 and w2 == 0 and v:
                        raise BundleError(f"{what}: a shape of unknown rank.")
                self.shape = tuple(dims)
            elif field == 3 and wire == 0:
                self.shard_id = v
            elif field == 4 and wire == 0:
                self.offset = _signed(v)
            elif field == 5 and wire == 0:
                self.size = _signed(v)
            elif field == 6 and wire == 5:
                self.crc32c = v
            elif field == 7:
                self.has_slices = True


# ----------------------------------------------------------------------------------------- the table

def _read_block(data: bytes, handle: Tuple[int, int], path: str, what: str) -> bytes:
    offset, size = handle
    end = offset + size + BLOCK_TRAILER_SIZE
    if offset < 0 or size < 0 or end > len(data):
        raise BundleError(f"{path}: the {what} block ({offset}+{size}) lies past the end of the file "
                          f"({len(data)} bytes); the file is truncated or corrupted.")
    block = data[offset : offset + size]
    ctype = data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if mask_crc(crc32c(bytes([ctype]), crc32c(block))) != stored:
        raise BundleError(f"{path}: checksum mismatch in the {what} block at offset {offset}; the file is corrupted.")
    if ctype == SNAPPY_COMPRESSION:
        raise BundleError(f"{path}: the {what} block is snappy-compressed, which this reader does not support "
                          "(TensorFlow writes bundles uncompressed; load the model with TensorFlow instead).")
    if ctype != NO_COMPRESSION:
        raise BundleError(f"{path}: unknown compression type {ctype} in the {what} block.")
    return block


def _block_entries(block: bytes, path: str, what: str) -> List[Tuple[bytes, bytes]]:
    if len(block) < 4:
        raise BundleError(f"{path}: the {what} block is too short ({len(block)} bytes).")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise BundleError(f"{path}: bad restart count {num_restarts} in the {what} block.")
    out, pos, key = [], 0, b""
    where = f"{path} ({what} block)"
    while pos < limit:
        shared, pos = _varint(block, pos, limit, where)
        non_shared, pos = _varint(block, pos, limit, where)
        vlen, pos = _varint(block, pos, limit, where)
        if shared > len(key) or pos + non_shared + vlen > limit:
            raise BundleError(f"{where}: a corrupted entry at byte {pos}.")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        out.append((key, block[pos : pos + vlen]))
        pos += vlen
    return out


def _read_table(path: str) -> List[Tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB-style table file, in key order."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BundleError(f"No checkpoint index at {path}.") from None
    if len(data) < FOOTER_SIZE:
        raise BundleError(f"{path} is {len(data)} bytes long, shorter than a table footer ({FOOTER_SIZE}); "
                          "the file is truncated.")
    footer = data[-FOOTER_SIZE:]
    lo, hi = struct.unpack_from("<II", footer, FOOTER_SIZE - 8)
    if (hi << 32) | lo != TABLE_MAGIC:
        raise BundleError(f"{path} is not a TensorFlow checkpoint index (bad magic number); "
                          "the file is truncated or corrupted.")
    pos = 0
    handles = []
    for _ in range(2):  # metaindex, then index
        off, pos = _varint(footer, pos, 40, f"{path} (footer)")
        size, pos = _varint(footer, pos, 40, f"{path} (footer)")
        handles.append((off, size))
    index = _read_block(data, handles[1], path, "index")
    entries = []
    for _, handle_bytes in _block_entries(index, path, "index"):
        off, p = _varint(handle_bytes, 0, len(handle_bytes), f"{path} (index)")
        size, _ = _varint(handle_bytes, p, len(handle_bytes), f"{path} (index)")
        entries.extend(_block_entries(_read_block(data, (off, size), path, "data"), path, "data"))
    return entries


# ----------------------------------------------------------------------------------------- the reader

class BundleReader:
    """The tensors of a TF2 checkpoint bundle, read without TensorFlow.

    Args:
        prefix: The bundle's prefix (``.../variables/variables``), or a SavedModel directory.
        verify_checksums: Also check each tensor's CRC-32C when it is read (pure Python: a few MB/s,
            so off by default; the index's own checksums and every size are always checked).

    Raises:
        BundleError: a missing, truncated or corrupted index, or an unsupported bundle.
    """

    def __init__(self, prefix: str, verify_checksums: bool = False):
        if os.path.isdir(prefix) and os.path.isfile(os.path.join(prefix, "variables", "variables.index")):
            prefix = os.path.join(prefix, "variables", "variables")
        self.prefix = prefix
        self.verify_checksums = verify_checksums
        index_path = prefix + ".index"
        self._entries: Dict[str, Entry] = {}
        num_shards = 1
        header_seen = False
        for key, value in _read_table(index_path):
            k = key.decode("utf-8", errors="replace")
            if k == "":
                header_seen = True
                for field, wire, v in _proto_fields(value, f"{index_path} (header)"):
                    if field == 1 and wire == 0:
                        num_shards = v
                    elif field == 2 and wire == 0 and v != 0:
                        raise BundleError(f"{index_path}: a big-endian bundle, which this reader does not support.")
                continue
            if k.startswith("\x00"):  # the entry of one slice of a partitioned tensor (EncodeTensorNameSlice)
                continue
            self._entries[k] = Entry(k, value)
        if not header_seen:
            raise BundleError(f"{index_path} has no bundle header; it is not a TensorFlow checkpoint index.")
        self.num_shards = num_shards
        self._shards: Dict[int, bytes] = {}

    def keys(self) -> List[str]:
        """The tensor names, sorted (as ``tf.train.list_variables``)."""
        return sorted(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def shape(self, key: str) -> Tuple[int, ...]:
        return self._entry(key).shape

    def is_sliced(self, key: str) -> bool:
        """Whether ``key`` is stored in slices (which :meth:`get_tensor` refuses)."""
        return self._entry(key).has_slices

    def dtype_name(self, key: str) -> str:
        d = self._entry(key).dtype
        return DTYPE_NAMES.get(d, f"DataType {d}")

    def _entry(self, key: str) -> Entry:
        try:
            return self._entries[key]
        except KeyError:
            raise KeyError(f"{key!r} is not in the checkpoint {self.prefix}.") from None

    def _shard(self, shard_id: int) -> bytes:
        if shard_id not in self._shards:
            if not 0 <= shard_id < self.num_shards:
                raise BundleError(f"{self.prefix}: shard {shard_id} of {self.num_shards} does not exist.")
            path = f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}"
            try:
                with open(path, "rb") as f:
                    self._shards[shard_id] = f.read()
            except FileNotFoundError:
                raise BundleError(f"Missing checkpoint data file {path}.") from None
        return self._shards[shard_id]

    def get_tensor(self, key: str):
        """The tensor ``key`` as a NumPy array (strings: ``bytes`` for a scalar, else an object array)."""
        e = self._entry(key)
        if e.has_slices:
            raise BundleError(f"{key!r} is stored in slices (a partitioned variable), which this reader does not support.")
        n = int(np.prod(e.shape, dtype=np.int64)) if e.shape else 1
        if any(d < 0 for d in e.shape):
            raise BundleError(f"{key!r} has a negative dimension {e.shape}; the index is corrupted.")
        if e.dtype != DT_STRING and e.dtype not in DTYPES:
            raise BundleError(f"{key!r} has dtype {DTYPE_NAMES.get(e.dtype, e.dtype)}, which this reader does not support.")
        data = self._shard(e.shard_id)
        if e.offset < 0 or e.size < 0 or e.offset + e.size > len(data):
            raise BundleError(f"{key!r} lies at {e.offset}+{e.size}, past the end of its data file "
                              f"({len(data)} bytes); the file is truncated.")
        raw = memoryview(data)[e.offset : e.offset + e.size]  # no copy until the array is made
        if e.dtype == DT_STRING:
            values, crc = self._strings(key, raw, n)
            self._check_crc(key, e, crc)
            if not e.shape:
                return values[0]
            arr = np.empty(n, dtype=object)
            arr[:] = values
            return arr.reshape(e.shape)
        self._check_crc(key, e, raw)
        dtype = DTYPES[e.dtype]
        if n * dtype.itemsize != e.size:
            raise BundleError(f"{key!r}: {e.size} bytes stored for {n} elements of {dtype}; the index is corrupted.")
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(e.shape)  # writable

    def _check_crc(self, key: str, e: Entry, data) -> None:
        """``data``: the bytes checksummed, or a callable computing the CRC (strings)."""
        if not self.verify_checksums or e.crc32c is None:
            return
        crc = data() if callable(data) else crc32c(data)
        if mask_crc(crc) != e.crc32c:
            raise BundleError(f"Checksum mismatch for {key!r}; the data file is corrupted.")

    def _strings(self, key: str, raw: bytes, n: int):
        """The strings of a DT_STRING tensor, and a function computing their CRC as TensorFlow does.

        Layout: varint64 lengths, a 4-byte masked CRC of the lengths, the bytes. The tensor's CRC covers
        each length as a little-endian uint32 (uint64 when larger), that checksum's 4 bytes and the bytes.
        """
        if not raw and n:
            raise BundleError(f"{key!r}: no bytes stored for {n} strings; the index is corrupted.")
        pos, lengths = 0, []
        for _ in range(n):
            length, pos = _varint(raw, pos, len(raw), repr(key))
            lengths.append(length)
        if n and pos + 4 > len(raw):
            raise BundleError(f"{key!r}: string lengths run past the stored size; the file is truncated.")
        length_crc = raw[pos : pos + 4]
        pos += 4 if n else 0
        values = []
        for length in lengths:
            if pos + length > len(raw):
                raise BundleError(f"{key!r}: string data runs past the stored size; the file is truncated.")
            values.append(bytes(raw[pos : pos + length]))
            pos += length

        def crc():
            c = 0
            for length in lengths:
                c = crc32c(struct.pack("<I", length) if length <= 0xFFFFFFFF else struct.pack("<Q", length), c)
            c = crc32c(length_crc, c)
            for v in values:
                c = crc32c(v, c)
            return c

        return values, crc
