"""Held frames without encoding them: H.264 "all-skip" P pictures spliced into x264's output.

A slide with a subtitle that nobody speaks over is the same picture for seconds. Encoding each copy
costs x264 about as much as a real frame (measured ~8 ms of CPU per 1080p frame even when nothing
changes), so the render is bound by frames that carry no information. Instead, x264 encodes every
*distinct* picture once (``bframes=0``, ``ref=1``) and this module inserts, after each, the number of
"repeat" pictures it is held for: P pictures whose macroblocks are all ``P_Skip`` with a zero
motion vector, i.e. exact copies of the previous picture, decoded bit-identically by any decoder.

Inserting reference pictures shifts ``frame_num`` (and ``pic_order_cnt_lsb`` for POC type 0), so the
headers of the x264 slices that follow are rewritten in place (both are fixed-width fields). Because
x264 predicts only from the previous picture (``ref=1``) and a repeat is identical to it, x264's
pictures decode exactly as x264 intended.

Only what x264 writes with ``bframes=0`` is supported: progressive frames, one slice group, one PPS,
reference pictures only, CAVLC or CABAC, POC type 0 or 2. Anything else raises
:class:`UnsupportedStream`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

NAL_SLICE = 1
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
HEADER_BYTES = 32  # slice header fields the splicer reads or rewrites lie in this many bytes


class UnsupportedStream(Exception):
    """The stream uses a feature the splicer does not handle."""


# --- bits -------------------------------------------------------------------------------------


class BitReader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 32:
                raise UnsupportedStream("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def ue(self, value: int) -> None:
        code = value + 1
        length = code.bit_length()
        self.u(length - 1, 0)
        self.u(length, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def tobytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


# --- NAL units --------------------------------------------------------------------------------


def split_nals(stream: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (start codes removed, EPBs kept)."""
    nals = []
    i = stream.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        nxt = stream.find(b"\x00\x00\x01", start)
        end = len(stream) if nxt < 0 else nxt
        nal = stream[start:end]
        if nxt >= 0 and nal.endswith(b"\x00"):
            nal = nal.rstrip(b"\x00")  # the leading zero of a 4-byte start code (trailing_zero_8bits)
        if nal:
            nals.append(nal)
        i = nxt
    return nals


def to_rbsp(payload: bytes) -> bytes:
    """Remove emulation-prevention bytes."""
    return payload.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in payload else payload


def from_rbsp(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes (before a byte <= 3 that follows two zero bytes)."""
    return _NEEDS_EPB.sub(b"\x00\x00\x03", rbsp)


# Two zeros followed by a byte <= 3, matching only the zeros, so the search goes on from that byte
# (a zero there starts the next pair, as in the standard's byte-by-byte rule).
_NEEDS_EPB = re.compile(b"\x00\x00(?=[\x00-\x03])")


def annexb(nal: bytes) -> bytes:
    return b"\x00\x00\x00\x01" + nal


@dataclass
class Sps:
    sps_id: int
    chroma_array_type: int
    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int
    width_mbs: int
    height_mbs: int

    @property
    def mbs(self) -> int:
        return self.width_mbs * self.height_mbs


@dataclass
class Pps:
    pps_id: int
    sps_id: int
    cabac: bool
    bottom_field_poc_present: bool
    weighted_pred: bool
    pic_init_qp: int
    deblocking_control: bool
    redundant_pic_cnt: bool


def parse_sps(rbsp: bytes) -> Sps:
    r = BitReader(rbsp[1:])
    profile = r.u(8)
    r.u(16)  # constraint flags, level
    sps_id = r.ue()
    chroma_format = 1
    separate_planes = 0
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma_format = r.ue()
        if chroma_format == 3:
            separate_planes = r.u(1)
        r.ue()
        r.ue()  # bit depths
        r.u(1)  # qpprime_y_zero_transform_bypass
        if r.u(1):  # seq_scaling_matrix_present
            for i in range(8 if chroma_format != 3 else 12):
                if r.u(1):
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    log2_max_frame_num = r.ue() + 4
    poc_type = r.ue()
    log2_max_poc_lsb = 0
    if poc_type == 0:
        log2_max_poc_lsb = r.ue() + 4
    elif poc_type == 1:
        raise UnsupportedStream("POC type 1")
    r.ue()  # max_num_ref_frames
    r.u(1)
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    if not r.u(1):
        raise UnsupportedStream("interlaced coding")
    return Sps(sps_id, 0 if separate_planes else chroma_format, log2_max_frame_num, poc_type, log2_max_poc_lsb, width_mbs, height_units)


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = nxt if nxt != 0 else last


def parse_pps(rbsp: bytes) -> Pps:
    r = BitReader(rbsp[1:])
    pps_id = r.ue()
    sps_id = r.ue()
    cabac = bool(r.u(1))
    bottom = bool(r.u(1))
    if r.ue() != 0:
        raise UnsupportedStream("slice groups")
    r.ue()
    r.ue()  # num_ref_idx defaults
    weighted = bool(r.u(1))
    r.u(2)
    qp = 26 + r.se()
    r.se()
    r.se()
    deblocking = bool(r.u(1))
    r.u(1)
    redundant = bool(r.u(1))
    return Pps(pps_id, sps_id, cabac, bottom, weighted, qp, deblocking, redundant)


# --- the splicer ------------------------------------------------------------------------------


class Splicer:
    """Rewrites x264's Annex B output, inserting repeats after each picture.

    Feed it x264's bytes with :meth:`feed` as they arrive and the hold of each picture (its
    number of frames, >= 1, in input order) with :meth:`hold`; it yields the output stream.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._holds: list[int] = []
        self._picture = 0
        self._sps: dict[int, Sps] = {}
        self._pps: dict[int, Pps] = {}
        self._frame_num = 0
        self._since_idr = 0
        self._skip_cache: dict[tuple, bytes] = {}
        self._open = False
        self.frames_out = 0

    def hold(self, frames: int) -> None:
        self._holds.append(frames)

    def feed(self, data: bytes) -> bytes:
        """Consume stream bytes; return the output ready so far."""
        self._buffer += data
        cut = self._buffer.rfind(b"\x00\x00\x01")
        if cut <= 0:
            return b""
        ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return b"".join(self._process(split_nals(ready)))

    def finish(self) -> bytes:
        """Flush the rest (the stream has ended)."""
        out = b"".join(self._process(split_nals(self._buffer)))
        self._buffer = b""
        out += self._close_picture()
        return out

    def _process(self, nals: Iterable[bytes]) -> Iterator[bytes]:
        for nal in nals:
            kind = nal[0] & 0x1F
            if kind == NAL_SPS:
                sps = parse_sps(to_rbsp(nal))
                self._sps[sps.sps_id] = sps
            elif kind == NAL_PPS:
                pps = parse_pps(to_rbsp(nal))
                self._pps[pps.pps_id] = pps
            if kind in (NAL_SLICE, NAL_IDR):
                rbsp = to_rbsp(nal[:HEADER_BYTES])  # the header fields read here lie well inside this
                r = BitReader(rbsp[1:])
                first_mb = r.ue()
                if first_mb == 0:
                    yield self._close_picture()
                    self._start_picture(kind == NAL_IDR)
                if (nal[0] >> 5) & 3 == 0:
                    raise UnsupportedStream("non-reference pictures (B-frames) cannot be held")
                yield annexb(self._rewrite(nal, rbsp, kind))
            else:
                if kind in (NAL_SPS, NAL_PPS, 6, 9) and self._open:
                    yield self._close_picture()
                yield annexb(nal)

    def _start_picture(self, idr: bool) -> None:
        if idr:
            self._frame_num = 0
            self._since_idr = 0
        else:
            self._frame_num = (self._frame_num + 1) % (1 << self._active_sps().log2_max_frame_num)
            self._since_idr += 1
        self._open = True

    def _close_picture(self) -> bytes:
        if not self._open:
            return b""
        self._open = False
        if self._picture >= len(self._holds):
            raise UnsupportedStream("more pictures than holds")
        hold = self._holds[self._picture]
        self._picture += 1
        self.frames_out += hold
        parts = []
        for _ in range(hold - 1):
            sps = self._active_sps()
            self._frame_num = (self._frame_num + 1) % (1 << sps.log2_max_frame_num)
            self._since_idr += 1
            parts.append(annexb(self._skip_nal()))
        return b"".join(parts)

    def _active_sps(self) -> Sps:
        pps = self._active_pps()
        return self._sps[pps.sps_id]

    def _active_pps(self) -> Pps:
        if len(self._pps) != 1:
            raise UnsupportedStream("expected exactly one PPS")
        return next(iter(self._pps.values()))

    def _rewrite(self, nal: bytes, rbsp: bytes, kind: int) -> bytes:
        """``nal`` with frame_num (and pic_order_cnt_lsb) set for its new place.

        Only a head of the NAL is unescaped, edited and escaped again: it is cut after a byte > 3,
        so no emulation-prevention sequence spans the cut and the rest stays valid as it is.
        """
        if kind == NAL_IDR:
            return nal
        cut = HEADER_BYTES
        while cut < len(nal) and nal[cut - 1] <= 3:
            cut += 1
        rest = nal[cut:]
        rbsp = to_rbsp(nal[:cut])
        pps = self._active_pps()
        sps = self._sps[pps.sps_id]
        r = BitReader(rbsp[1:])
        r.ue()
        r.ue()
        if r.ue() != pps.pps_id:
            raise UnsupportedStream("slice refers to another PPS")
        fields = [(r.pos, sps.log2_max_frame_num, self._frame_num)]
        if sps.poc_type == 0:
            fields.append((r.pos + sps.log2_max_frame_num, sps.log2_max_poc_lsb, self._poc_lsb(sps)))
        body = bytearray(rbsp)
        if 8 + fields[-1][0] + fields[-1][1] > 8 * len(body):
            raise UnsupportedStream("slice header longer than expected")
        for pos, width, value in fields:
            for i in range(width):
                bit = (value >> (width - 1 - i)) & 1
                index = 1 + ((pos + i) >> 3)
                mask = 1 << (7 - ((pos + i) & 7))
                body[index] = (body[index] | mask) if bit else (body[index] & ~mask)
        return bytes(body[:1]) + from_rbsp(bytes(body[1:])) + rest

    def _poc_lsb(self, sps: Sps) -> int:
        return (2 * self._since_idr) % (1 << sps.log2_max_poc_lsb)

    def _skip_nal(self) -> bytes:
        pps = self._active_pps()
        sps = self._sps[pps.sps_id]
        w = BitWriter()
        w.ue(0)  # first_mb_in_slice
        w.ue(5)  # P, all slices of the picture
        w.ue(pps.pps_id)
        w.u(sps.log2_max_frame_num, self._frame_num)
        if sps.poc_type == 0:
            w.u(sps.log2_max_poc_lsb, self._poc_lsb(sps))
            if pps.bottom_field_poc_present:
                w.se(0)
        if pps.redundant_pic_cnt:
            w.ue(0)
        w.u(1, 1)  # num_ref_idx_active_override_flag
        w.ue(0)  # one reference: the previous picture
        w.u(1, 0)  # ref_pic_list_modification_flag_l0
        if pps.weighted_pred:
            w.ue(0)
            if sps.chroma_array_type != 0:
                w.ue(0)
            w.u(1, 0)
            if sps.chroma_array_type != 0:
                w.u(1, 0)
        w.u(1, 0)  # adaptive_ref_pic_marking_mode_flag: sliding window
        if pps.cabac:
            w.ue(0)  # cabac_init_idc
        w.se(0)  # slice_qp_delta
        if pps.deblocking_control:
            w.ue(1)  # no deblocking (nothing to deblock in a copy anyway)
        header_bits = w.bits
        if pps.cabac:
            header_bits = header_bits + [1] * (-len(header_bits) % 8)  # cabac_alignment_one_bit
            key = ("cabac", sps.mbs, pps.pic_init_qp)
            if key not in self._skip_cache:
                self._skip_cache[key] = cabac_all_skip(sps.mbs, pps.pic_init_qp)
            payload = _bits_to_bytes(header_bits) + self._skip_cache[key]
        else:
            tail = BitWriter()
            tail.ue(sps.mbs)  # mb_skip_run
            tail.u(1, 1)  # rbsp_stop_one_bit
            payload = _bits_to_bytes(header_bits + tail.bits)
        nal_header = bytes([(2 << 5) | NAL_SLICE])
        return nal_header + from_rbsp(payload)


def _bits_to_bytes(bits: list[int]) -> bytes:
    w = BitWriter()
    w.bits = list(bits)
    return w.tobytes()


# --- CABAC for an all-skip P slice ------------------------------------------------------------

# ITU-T H.264 Table 9-44 (rangeTabLPS) and Table 9-45 (transIdxLPS); transIdxMPS is min(s + 1, 62).
_RANGE_LPS = [
    (128, 176, 208, 240), (128, 167, 197, 227), (128, 158, 187, 216), (123, 150, 178, 205),
    (116, 142, 169, 195), (111, 135, 160, 185), (105, 128, 152, 175), (100, 122, 144, 166),
    (95, 116, 137, 158), (90, 110, 130, 150), (85, 104, 123, 142), (81, 99, 117, 135),
    (77, 94, 111, 128), (73, 89, 105, 122), (69, 85, 100, 116), (66, 80, 95, 110),
    (62, 76, 90, 104), (59, 72, 86, 99), (56, 69, 81, 94), (53, 65, 77, 89),
    (51, 62, 73, 85), (48, 59, 69, 80), (46, 56, 66, 76), (43, 53, 63, 72),
    (41, 50, 59, 69), (39, 48, 56, 65), (37, 45, 54, 62), (35, 43, 51, 59),
    (33, 41, 48, 56), (32, 39, 46, 53), (30, 37, 43, 50), (29, 35, 41, 48),
    (27, 33, 39, 45), (26, 31, 37, 43), (24, 30, 35, 41), (23, 28, 33, 39),
    (22, 27, 32, 37), (21, 26, 30, 35), (20, 24, 29, 33), (19, 23, 27, 31),
    (18, 22, 26, 30), (17, 21, 25, 28), (16, 20, 23, 27), (15, 19, 22, 25),
    (14, 18, 21, 24), (14, 17, 20, 23), (13, 16, 19, 22), (12, 15, 18, 21),
    (12, 14, 17, 20), (11, 14, 16, 19), (11, 13, 15, 18), (10, 12, 15, 17),
    (10, 12, 14, 16), (9, 11, 13, 15), (9, 11, 12, 14), (8, 10, 12, 14),
    (8, 9, 11, 13), (7, 9, 11, 12), (7, 9, 10, 12), (7, 8, 10, 11),
    (6, 8, 9, 11), (6, 7, 9, 10), (6, 7, 8, 9), (2, 2, 2, 2),
]
_TRANS_LPS = [
    0, 0, 1, 2, 2, 4, 4, 5, 6, 7, 8, 9, 9, 11, 11, 12,
    13, 13, 15, 15, 16, 16, 18, 18, 19, 19, 21, 21, 22, 22, 23, 24,
    24, 25, 26, 26, 27, 27, 28, 29, 29, 30, 30, 30, 31, 32, 32, 33,
    33, 33, 34, 34, 35, 35, 35, 36, 36, 36, 37, 37, 37, 38, 38, 63,
]
_SKIP_FLAG_INIT = (23, 33)  # (m, n) of ctxIdx 11 (mb_skip_flag, P, no skipped neighbour) for cabac_init_idc 0


class _CabacEncoder:
    """The arithmetic encoder of H.264 clause 9.3.4 (enough for decisions and termination)."""

    def __init__(self) -> None:
        self.low = 0
        self.range = 510
        self.outstanding = 0
        self.first = True
        self.bits: list[int] = []

    def decision(self, state: list[int], bin_val: int) -> None:
        p_state, mps = state
        lps = _RANGE_LPS[p_state][(self.range >> 6) & 3]
        self.range -= lps
        if bin_val != mps:
            self.low += self.range
            self.range = lps
            if p_state == 0:
                state[1] = 1 - mps
            state[0] = _TRANS_LPS[p_state]
        else:
            state[0] = min(p_state + 1, 62)
        self._renorm()

    def terminate(self, bin_val: int) -> None:
        self.range -= 2
        if bin_val:
            self.low += self.range
            self.range = 2
            self._renorm()
            self._put((self.low >> 9) & 1)
            self.bits.extend([(self.low >> 8) & 1, 1])  # the last bit is rbsp_stop_one_bit
        else:
            self._renorm()

    def _renorm(self) -> None:
        while self.range < 256:
            if self.low < 256:
                self._put(0)
            elif self.low >= 512:
                self.low -= 512
                self._put(1)
            else:
                self.low -= 256
                self.outstanding += 1
            self.range <<= 1
            self.low <<= 1

    def _put(self, bit: int) -> None:
        if self.first:
            self.first = False
        else:
            self.bits.append(bit)
        while self.outstanding > 0:
            self.bits.append(1 - bit)
            self.outstanding -= 1


def cabac_all_skip(mbs: int, slice_qp: int) -> bytes:
    """The CABAC slice data of a P slice whose ``mbs`` macroblocks are all skipped, byte-aligned."""
    m, n = _SKIP_FLAG_INIT
    pre = min(max(((m * min(max(slice_qp, 0), 51)) >> 4) + n, 1), 126)
    state = [63 - pre, 0] if pre <= 63 else [pre - 64, 1]
    enc = _CabacEncoder()
    for i in range(mbs):
        enc.decision(state, 1)  # mb_skip_flag
        enc.terminate(1 if i == mbs - 1 else 0)  # end_of_slice_flag
    return _bits_to_bytes(enc.bits)
