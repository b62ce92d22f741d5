"""Held frames without encoding them: H.264 "all-skip" P pictures spliced into x264's output.

A slide with a subtitle that nobody speaks over is the same picture for seconds. Encoding each copy
costs x264 about as much as a real frame (measured ~8 ms of CPU per 1080p frame even when nothing
changes), so the render is bound by frames that carry no information. Instead, x264 encodes each
picture once (``bframes=0``, ``ref=1``) and this module inserts exact copies after it: P pictures
whose macroblocks are all ``P_Skip`` with a zero motion vector, decoded bit-identically by any
decoder.

The copies are *non-reference* pictures, so the decoder's reference frames are x264's pictures
alone and x264's pictures decode exactly as x264 intended (its ``frame_num`` stays right too). With
the SPS raised to keep the last few x264 pictures as references (``refs``, within the level's
limit), a copy can show any of them, not just the latest: a character's mouth going open, shut,
open again costs two x264 pictures, not one per change. Copies pick their picture with
``ref_pic_list_modification``.

Rewrites: the SPS (POC type 2, which forbids consecutive non-reference pictures, becomes POC type 0
with a 16-bit ``pic_order_cnt_lsb``; ``max_num_ref_frames`` and the VUI's
``max_dec_frame_buffering`` become ``refs``), and each x264 slice header gets its
``pic_order_cnt_lsb`` inserted (16 bits: the slice data moves by two whole bytes).

Only what x264 writes with ``bframes=0:ref=1`` is supported: progressive frames, one slice group,
one PPS, reference pictures only, CAVLC or CABAC, POC type 2. Anything else raises
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
    profile_idc: int
    level_idc: int
    chroma_array_type: int
    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int
    max_num_ref_frames: int
    width_mbs: int
    height_mbs: int
    # bit positions (in the RBSP after the NAL header byte) used by rewrite_sps
    poc_span: tuple[int, int] = (0, 0)  # pic_order_cnt_type .. max_num_ref_frames, inclusive
    reorder_span: tuple[int, int] | None = None  # max_num_reorder_frames and max_dec_frame_buffering

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
    r.u(8)  # constraint flags
    level = r.u(8)
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
    poc_start = r.pos
    poc_type = r.ue()
    log2_max_poc_lsb = 0
    if poc_type == 0:
        log2_max_poc_lsb = r.ue() + 4
    elif poc_type == 1:
        raise UnsupportedStream("POC type 1")
    max_refs = r.ue()
    poc_end = r.pos
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    if not r.u(1):
        raise UnsupportedStream("interlaced coding")
    r.u(1)  # direct_8x8_inference_flag
    if r.u(1):  # frame_cropping_flag
        for _ in range(4):
            r.ue()
    reorder_span = None
    if r.u(1):  # vui_parameters_present_flag
        reorder_span = _vui_reorder_span(r)
    return Sps(
        sps_id, profile, level, 0 if separate_planes else chroma_format, log2_max_frame_num, poc_type, log2_max_poc_lsb,
        max_refs, width_mbs, height_units, (poc_start, poc_end), reorder_span,
    )


def _vui_reorder_span(r: BitReader) -> tuple[int, int] | None:
    """Read VUI parameters; the bit span of max_num_reorder_frames + max_dec_frame_buffering, if any."""
    if r.u(1):  # aspect_ratio_info_present_flag
        if r.u(8) == 255:
            r.u(32)
    if r.u(1):  # overscan_info_present_flag
        r.u(1)
    if r.u(1):  # video_signal_type_present_flag
        r.u(4)
        if r.u(1):
            r.u(24)
    if r.u(1):  # chroma_loc_info_present_flag
        r.ue()
        r.ue()
    if r.u(1):  # timing_info_present_flag
        r.u(32)
        r.u(32)
        r.u(1)
    hrd = 0
    for _ in range(2):  # nal_hrd, vcl_hrd
        if r.u(1):
            hrd += 1
            count = r.ue() + 1
            r.u(8)
            for _ in range(count):
                r.ue()
                r.ue()
                r.u(1)
            r.u(20)
    if hrd:
        r.u(1)  # low_delay_hrd_flag
    r.u(1)  # pic_struct_present_flag
    if not r.u(1):  # bitstream_restriction_flag
        return None
    r.u(1)
    for _ in range(4):
        r.ue()
    start = r.pos
    r.ue()
    r.ue()
    return start, r.pos


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = nxt if nxt != 0 else last


# ITU-T H.264 Table A-1: MaxDpbMbs by level_idc.
_MAX_DPB_MBS = {
    9: 396, 10: 396, 11: 900, 12: 2376, 13: 2376, 20: 2376, 21: 4752, 22: 8100, 30: 8100, 31: 18000, 32: 20480,
    40: 32768, 41: 32768, 42: 34816, 50: 110400, 51: 184320, 52: 184320, 60: 696320, 61: 696320, 62: 696320,
}


def dpb_frames(level_idc: int, mbs: int) -> int:
    """How many frames ``level_idc`` lets the decoder keep (MaxDpbFrames) at ``mbs`` macroblocks, at most 16."""
    return min(16, _MAX_DPB_MBS.get(level_idc, 0) // max(1, mbs))


def level_for(sps: Sps, refs: int) -> int:
    """The stream's level, or the lowest higher one whose decoded picture buffer holds ``refs`` frames."""
    if dpb_frames(sps.level_idc, sps.mbs) >= refs:
        return sps.level_idc
    for level in sorted(_MAX_DPB_MBS):
        if level > sps.level_idc and dpb_frames(level, sps.mbs) >= refs:
            return level
    raise UnsupportedStream(f"no level keeps {refs} reference frames of {sps.mbs} macroblocks")


def rewrite_sps(rbsp: bytes, sps: Sps, refs: int) -> bytes:
    """The SPS (RBSP, with its header byte) with POC type 0 (16-bit lsb) and ``refs`` reference frames.

    POC type 0 lets held copies be non-reference pictures, which type 2 forbids back to back; the
    reference frames let a copy show any of the last ``refs`` pictures x264 wrote. The VUI's
    ``max_dec_frame_buffering`` is raised to match (``max_num_reorder_frames`` stays 0), and the
    level only if its buffer is too small for them (at 1080p, level 4 holds 4 frames).
    """
    reader = BitReader(rbsp[1:])
    bits = [reader.u(1) for _ in range(8 * (len(rbsp) - 1))]
    stop = len(bits) - 1 - bits[::-1].index(1)  # rbsp_stop_one_bit
    w = BitWriter()
    w.ue(0)  # pic_order_cnt_type
    w.ue(POC_LSB_BITS - 4)
    w.ue(refs)
    a, b = sps.poc_span
    out = bits[:a] + w.bits
    if sps.reorder_span is None:
        out += bits[b:stop]
    else:
        c, d = sps.reorder_span
        tail = BitWriter()
        tail.ue(0)  # max_num_reorder_frames
        tail.ue(refs)  # max_dec_frame_buffering
        out += bits[b:c] + tail.bits + bits[d:stop]
    out[16:24] = [(level_for(sps, refs) >> (7 - i)) & 1 for i in range(8)]  # level_idc
    return rbsp[:1] + _bits_to_bytes(out + [1])


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

POC_LSB_BITS = 16
# A copy's POC is inferred from the last reference picture's: it must be fewer than
# 2**POC_LSB_BITS / 4 frames later. Planners encode a picture again before that (see Splicer.copies).
MAX_COPY_RUN = (1 << POC_LSB_BITS) // 4 - 64


class Splicer:
    """Rewrites x264's Annex B output, inserting exact copies of recent pictures after each picture.

    Feed it x264's bytes with :meth:`feed` as they arrive, and say in input order what follows each
    x264 picture with :meth:`copies` (or :meth:`hold`); it yields the output stream.
    """

    def __init__(self, refs: int = 4) -> None:
        if not 1 <= refs <= 16:
            raise ValueError("refs must be 1..16")
        self.refs = refs
        self._buffer = b""
        self._after: list[list[tuple[int, int]]] = []
        self._picture = 0
        self._sps: dict[int, Sps] = {}
        self._pps: dict[int, Pps] = {}
        self._ref_frame_num = 0  # frame_num of the last reference (x264) picture
        self._since_idr = 0  # pictures since the last IDR, in output order
        self._pictures_since_idr = 0  # x264 pictures after the last IDR: how far back a copy may reach
        self._skip_cache: dict[tuple, bytes] = {}
        self._open = False
        self.frames_out = 0

    def hold(self, frames: int) -> None:
        """The next x264 picture is shown for ``frames`` frames (>= 1)."""
        self.copies([(0, frames - 1)] if frames > 1 else [])

    def copies(self, spans: list[tuple[int, int]]) -> None:
        """After the next x264 picture come ``spans``: ``(back, count)`` = ``count`` copies of the
        x264 picture ``back`` pictures before it (0: itself), ``back`` < ``refs``.

        From one x264 picture to the next there may be at most :data:`MAX_COPY_RUN` copies in all.
        """
        if any(back >= self.refs or back < 0 or count < 0 for back, count in spans):
            raise ValueError(f"copies {spans} reach past the {self.refs} reference pictures")
        if sum(count for _, count in spans) > MAX_COPY_RUN:
            raise ValueError("too many copies after one picture")
        self._after.append(list(spans))

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
            if kind in (NAL_SPS, NAL_PPS, 6, 9) and self._open:
                yield self._close_picture()
            if kind == NAL_SPS:
                rbsp = to_rbsp(nal)
                sps = parse_sps(rbsp)
                if sps.poc_type != 2 or sps.max_num_ref_frames != 1:
                    raise UnsupportedStream("expected x264 with bframes=0 and ref=1 (POC type 2, one reference)")
                self._sps[sps.sps_id] = sps
                yield annexb(nal[:1] + from_rbsp(rewrite_sps(rbsp, sps, self.refs)[1:]))
            elif kind == NAL_PPS:
                pps = parse_pps(to_rbsp(nal))
                if pps.bottom_field_poc_present:
                    raise UnsupportedStream("bottom-field POC in a progressive stream")
                self._pps[pps.pps_id] = pps
                yield annexb(nal)
            elif kind in (NAL_SLICE, NAL_IDR):
                if (nal[0] >> 5) & 3 == 0:
                    raise UnsupportedStream("non-reference pictures (B-frames) cannot be held")
                r = BitReader(to_rbsp(nal[:HEADER_BYTES])[1:])
                if r.ue() == 0:  # first_mb_in_slice: a new picture
                    yield self._close_picture()
                    self._start_picture(kind == NAL_IDR)
                yield annexb(self._with_poc(nal, kind))
            else:
                yield annexb(nal)

    def _start_picture(self, idr: bool) -> None:
        if idr:
            self._since_idr = 0
            self._ref_frame_num = 0
            self._pictures_since_idr = 0
        else:
            self._since_idr += 1
            self._ref_frame_num = (self._ref_frame_num + 1) % (1 << self._active_sps().log2_max_frame_num)
            self._pictures_since_idr += 1
        self._open = True

    def _close_picture(self) -> bytes:
        if not self._open:
            return b""
        self._open = False
        if self._picture >= len(self._after):
            raise UnsupportedStream("more pictures than holds")
        spans = self._after[self._picture]
        self._picture += 1
        self.frames_out += 1
        parts = []
        for back, count in spans:
            if count and back > self._pictures_since_idr:
                raise UnsupportedStream("a copy refers to a picture before the last IDR")
            for _ in range(count):
                self._since_idr += 1
                parts.append(annexb(self._skip_nal(back)))
        self.frames_out += sum(count for _, count in spans)
        return b"".join(parts)

    def _active_sps(self) -> Sps:
        pps = self._active_pps()
        return self._sps[pps.sps_id]

    def _active_pps(self) -> Pps:
        if len(self._pps) != 1:
            raise UnsupportedStream("expected exactly one PPS")
        return next(iter(self._pps.values()))

    def _with_poc(self, nal: bytes, kind: int) -> bytes:
        """An x264 slice with the ``pic_order_cnt_lsb`` POC type 0 needs, inserted after the fields before it.

        x264's frame_num stays right: copies are non-reference pictures and do not advance it. The
        field is 16 bits, so the rest of the slice moves by exactly two bytes and CABAC's byte
        alignment holds. Only a head of the NAL is unescaped, edited and escaped again: it is cut
        after a byte > 3, so no emulation-prevention sequence spans the cut and the rest stays valid.
        """
        cut = HEADER_BYTES
        while cut < len(nal) and nal[cut - 1] <= 3:
            cut += 1
        head = to_rbsp(nal[1:cut])
        pps = self._active_pps()
        sps = self._sps[pps.sps_id]
        r = BitReader(head)
        r.ue()  # first_mb_in_slice
        r.ue()  # slice_type
        if r.ue() != pps.pps_id:
            raise UnsupportedStream("slice refers to another PPS")
        r.u(sps.log2_max_frame_num)
        if kind == NAL_IDR:
            r.ue()  # idr_pic_id
        pos = r.pos
        if pos + 16 > 8 * len(head):
            raise UnsupportedStream("slice header longer than expected")
        bits = 8 * len(head)
        value = int.from_bytes(head, "big")
        low = value & ((1 << (bits - pos)) - 1)
        value = ((((value >> (bits - pos)) << POC_LSB_BITS) | self._poc_lsb()) << (bits - pos)) | low
        return nal[:1] + from_rbsp(value.to_bytes(len(head) + POC_LSB_BITS // 8, "big")) + nal[cut:]

    def _poc_lsb(self) -> int:
        return (2 * self._since_idr) % (1 << POC_LSB_BITS)

    def _skip_nal(self, back: int) -> bytes:
        """A non-reference P picture, all macroblocks skipped, predicting from the x264 picture ``back`` ago."""
        pps = self._active_pps()
        sps = self._sps[pps.sps_id]
        w = BitWriter()
        w.ue(0)  # first_mb_in_slice
        w.ue(5)  # P, all slices of the picture
        w.ue(pps.pps_id)
        w.u(sps.log2_max_frame_num, (self._ref_frame_num + 1) % (1 << sps.log2_max_frame_num))
        w.u(POC_LSB_BITS, self._poc_lsb())
        if pps.redundant_pic_cnt:
            w.ue(0)
        w.u(1, 1)  # num_ref_idx_active_override_flag
        w.ue(0)  # one reference
        if back:
            w.u(1, 1)  # ref_pic_list_modification_flag_l0: put the wanted picture first
            w.ue(0)  # modification_of_pic_nums_idc: subtract from CurrPicNum (= its frame_num)
            w.ue(back)  # abs_diff_pic_num_minus1: the reference frames are CurrPicNum-1, -2, ...
            w.ue(3)
        else:
            w.u(1, 0)  # the default list starts with the latest reference picture
        if pps.weighted_pred:
            w.ue(0)
            if sps.chroma_array_type != 0:
                w.ue(0)
            w.u(1, 0)
            if sps.chroma_array_type != 0:
                w.u(1, 0)
        # nal_ref_idc = 0: no dec_ref_pic_marking()
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
        nal_header = bytes([NAL_SLICE])  # nal_ref_idc 0
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
