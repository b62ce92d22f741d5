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
    num_ref_idx_l0_default: int = 1


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
    refs_l0 = r.ue() + 1
    r.ue()  # num_ref_idx_l1_default_active_minus1
    weighted = bool(r.u(1))
    r.u(2)
    qp = 26 + r.se()
    r.se()
    r.se()
    deblocking = bool(r.u(1))
    r.u(1)
    redundant = bool(r.u(1))
    return Pps(pps_id, sps_id, cabac, bottom, weighted, qp, deblocking, redundant, refs_l0)


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
        # What follows each x264 picture, in order: ("x264", spans) for the picture itself, then
        # ("patch", spans, mbs, samples) for each patch picture made from it (see patch()).
        self._entries: list[tuple] = []
        self._next = 0  # the entry of the x264 picture the stream is at
        self._patch_pps: bytes | None = None
        self._patches_before = 0  # patch pictures between the current x264 picture and the one before it
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
        self._entries.append(("x264", list(spans)))

    def patch(self, spans: list[tuple[int, int]], mbs: list[int], samples: bytes) -> None:
        """After the x264 picture (and patches) registered last comes a *patch picture*: that x264
        picture with the macroblocks ``mbs`` (raster indices, ascending) replaced by ``samples``
        (384 bytes each: 16x16 luma, then 8x8 Cb and 8x8 Cr, in raster order), followed by
        ``spans`` of copies as for :meth:`copies` (``back`` 0 is the patch itself).

        A patch is a reference picture coded by this module, not by x264: ``P_Skip`` everywhere
        (an exact copy of the x264 picture) and ``I_PCM`` in the given macroblocks (exact samples),
        without deblocking, so it decodes to exactly those pixels. A mouth or a blink changes a few
        dozen macroblocks of a 1080p frame: x264 would spend a whole frame's analysis on it. It is
        written with its own CAVLC PPS (``I_PCM`` is simple to write in CAVLC whatever x264 uses),
        and the next x264 picture is pointed back at its own reference with a
        ``ref_pic_list_modification``, so x264's pictures decode exactly as x264 made them. At most
        ``refs - 1`` patches may follow one x264 picture (it must stay in the reference window).
        """
        if not self._entries:
            raise ValueError("a patch needs an x264 picture before it")
        run = 0
        for entry in reversed(self._entries):
            if entry[0] == "x264":
                break
            run += 1
        if run + 1 >= self.refs:
            raise ValueError(f"more than {self.refs - 1} patches after one x264 picture")
        if any(back >= self.refs or back < 0 or count < 0 for back, count in spans):
            raise ValueError(f"copies {spans} reach past the {self.refs} reference pictures")
        if sum(count for _, count in spans) > MAX_COPY_RUN:
            raise ValueError("too many copies after one picture")
        if len(samples) != PCM_BYTES * len(mbs) or list(mbs) != sorted(set(mbs)):
            raise ValueError("patch macroblocks must be ascending and have 384 bytes of samples each")
        self._entries.append(("patch", list(spans), list(mbs), bytes(samples)))

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
                yield annexb(self._patch_pps_nal())
            elif kind in (NAL_SLICE, NAL_IDR):
                if (nal[0] >> 5) & 3 == 0:
                    raise UnsupportedStream("non-reference pictures (B-frames) cannot be held")
                r = BitReader(to_rbsp(nal[:HEADER_BYTES])[1:])
                if r.ue() == 0:  # first_mb_in_slice: a new picture
                    yield self._close_picture()
                    self._start_picture(kind == NAL_IDR)
                if self._patches_before and kind == NAL_SLICE:
                    yield annexb(self._rewrite_slice(nal))
                else:
                    yield annexb(self._with_poc(nal, kind))
            else:
                yield annexb(nal)

    def _start_picture(self, idr: bool) -> None:
        if idr:
            self._since_idr = 0
            self._ref_frame_num = 0
            self._pictures_since_idr = 0
            self._patches_before = 0
        else:
            self._since_idr += 1
            self._ref_frame_num = (self._ref_frame_num + 1) % (1 << self._active_sps().log2_max_frame_num)
            self._pictures_since_idr += 1
        self._open = True

    def _close_picture(self) -> bytes:
        if not self._open:
            return b""
        self._open = False
        if self._next >= len(self._entries) or self._entries[self._next][0] != "x264":
            raise UnsupportedStream("more pictures than holds")
        parts = self._copies(self._entries[self._next][1])
        self.frames_out += 1
        self._next += 1
        patches = 0
        while self._next < len(self._entries) and self._entries[self._next][0] == "patch":
            _, spans, mbs, samples = self._entries[self._next]
            self._entries[self._next] = ("patch", spans, None, None)  # the samples are written: let them go
            self._since_idr += 1
            self._ref_frame_num = (self._ref_frame_num + 1) % (1 << self._active_sps().log2_max_frame_num)
            self._pictures_since_idr += 1
            parts.append(annexb(self._patch_nal(patches, mbs, samples)))
            self.frames_out += 1
            patches += 1
            parts += self._copies(spans)
            self._next += 1
        self._patches_before = patches
        return b"".join(parts)

    def _copies(self, spans: list[tuple[int, int]]) -> list[bytes]:
        parts = []
        for back, count in spans:
            if count and back > self._pictures_since_idr:
                raise UnsupportedStream("a copy refers to a picture before the last IDR")
            for _ in range(count):
                self._since_idr += 1
                parts.append(annexb(self._skip_nal(back)))
        self.frames_out += sum(count for _, count in spans)
        return parts

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
        frame_num_at = r.pos
        r.u(sps.log2_max_frame_num)
        if kind == NAL_IDR:
            r.ue()  # idr_pic_id
        pos = r.pos
        if pos + 16 > 8 * len(head):
            raise UnsupportedStream("slice header longer than expected")
        bits = 8 * len(head)
        value = int.from_bytes(head, "big")
        low = value & ((1 << (bits - pos)) - 1)
        # frame_num counts patch pictures too (they are reference pictures x264 never saw)
        n = sps.log2_max_frame_num
        at = bits - frame_num_at - n
        value = (value & ~(((1 << n) - 1) << at)) | (self._ref_frame_num << at)
        value = ((((value >> (bits - pos)) << POC_LSB_BITS) | self._poc_lsb()) << (bits - pos)) | low
        return nal[:1] + from_rbsp(value.to_bytes(len(head) + POC_LSB_BITS // 8, "big")) + nal[cut:]

    def _rewrite_slice(self, nal: bytes) -> bytes:
        """An x264 P slice after patch pictures: frame_num and POC as in :meth:`_with_poc`, and a
        ``ref_pic_list_modification`` that puts x264's own last picture (``_patches_before``
        reference pictures back) first in the list, where x264 predicted from.

        The header grows by a number of bits that is not a multiple of 8, so the whole header is
        parsed and written again; CABAC data starts at the next byte boundary (alignment ones
        rebuilt), CAVLC data is shifted bit for bit.
        """
        pps = self._active_pps()
        sps = self._sps[pps.sps_id]
        rbsp = to_rbsp(nal[1:])
        nal_ref_idc = (nal[0] >> 5) & 3
        r = BitReader(rbsp)
        r.ue()  # first_mb_in_slice
        slice_type = r.ue() % 5
        if r.ue() != pps.pps_id:
            raise UnsupportedStream("slice refers to another PPS")
        frame_num_at = r.pos
        r.u(sps.log2_max_frame_num)
        poc_at = r.pos
        if slice_type != 0:
            raise UnsupportedStream("x264 wrote a non-P slice after a patch picture")
        if pps.redundant_pic_cnt:
            r.ue()
        refs_l0 = pps.num_ref_idx_l0_default
        if r.u(1):  # num_ref_idx_active_override_flag
            refs_l0 = r.ue() + 1
        modification_at = r.pos
        if r.u(1):
            raise UnsupportedStream("x264 slice with its own reference list modification")
        modification_end = r.pos
        if pps.weighted_pred:
            r.ue()  # luma_log2_weight_denom
            if sps.chroma_array_type != 0:
                r.ue()
            for _ in range(refs_l0):
                if r.u(1):
                    r.se()
                    r.se()
                if sps.chroma_array_type != 0 and r.u(1):
                    for _ in range(4):
                        r.se()
        if nal_ref_idc:
            if r.u(1):  # adaptive_ref_pic_marking_mode_flag
                while (op := r.ue()) != 0:
                    if op in (1, 3):
                        r.ue()
                    if op == 2:
                        r.ue()
                    if op in (3, 6):
                        r.ue()
                    if op == 4:
                        r.ue()
        if pps.cabac:
            r.ue()  # cabac_init_idc
        r.se()  # slice_qp_delta
        if pps.deblocking_control and r.ue() != 1:
            r.se()
            r.se()
        header_end = r.pos
        total = 8 * len(rbsp)
        value = int.from_bytes(rbsp, "big")

        def bits(a: int, b: int) -> tuple[int, int]:
            return (value >> (total - b)) & ((1 << (b - a)) - 1), b - a

        w = _FastBits()
        w.put(*bits(0, frame_num_at))
        w.put(self._ref_frame_num, sps.log2_max_frame_num)
        w.put(self._poc_lsb(), POC_LSB_BITS)
        w.put(*bits(poc_at, modification_at))
        w.put(1, 1)  # ref_pic_list_modification_flag_l0
        w.ue(0)  # subtract from CurrPicNum
        w.ue(self._patches_before)  # abs_diff_pic_num_minus1: x264's picture is patches + 1 back
        w.ue(3)
        w.put(*bits(modification_end, header_end))
        if pps.cabac:
            while w.pending:
                w.put(1, 1)  # cabac_alignment_one_bit
            w.raw(rbsp[(header_end + 7) // 8 :])
        else:
            end = total - (value & -value).bit_length()  # where the rbsp_stop_one_bit is
            w.put(*bits(header_end, end))
            w.put(1, 1)
            w.align()
        return nal[:1] + from_rbsp(w.getvalue())

    def _patch_pps_nal(self) -> bytes:
        """The CAVLC PPS the patch pictures use (an id beside x264's; no weighted prediction, deblocking control)."""
        x264 = self._active_pps()
        w = _FastBits()
        w.ue(self._patch_pps_id())
        w.ue(x264.sps_id)
        w.put(0, 1)  # entropy_coding_mode_flag: CAVLC
        w.put(0, 1)  # bottom_field_pic_order_in_frame_present_flag
        w.ue(0)  # num_slice_groups_minus1
        w.ue(0)  # num_ref_idx_l0_default_active_minus1
        w.ue(0)  # num_ref_idx_l1_default_active_minus1
        w.put(0, 1)  # weighted_pred_flag
        w.put(0, 2)  # weighted_bipred_idc
        w.se(0)  # pic_init_qp_minus26
        w.se(0)  # pic_init_qs_minus26
        w.se(0)  # chroma_qp_index_offset
        w.put(1, 1)  # deblocking_filter_control_present_flag
        w.put(0, 1)  # constrained_intra_pred_flag
        w.put(0, 1)  # redundant_pic_cnt_present_flag
        w.put(1, 1)  # rbsp_stop_one_bit
        w.align()
        return bytes([(3 << 5) | NAL_PPS]) + from_rbsp(w.getvalue())

    def _patch_pps_id(self) -> int:
        return self._active_pps().pps_id + 1

    def _patch_nal(self, back: int, mbs: list[int], samples: bytes) -> bytes:
        """A reference P picture predicting from the x264 picture ``back`` reference pictures ago:
        ``P_Skip`` (an exact copy) except ``I_PCM`` macroblocks ``mbs`` holding ``samples``."""
        sps = self._active_sps()
        w = _FastBits()
        w.ue(0)  # first_mb_in_slice
        w.ue(5)  # P, all slices of the picture
        w.ue(self._patch_pps_id())
        w.put(self._ref_frame_num, sps.log2_max_frame_num)
        w.put(self._poc_lsb(), POC_LSB_BITS)
        w.put(1, 1)  # num_ref_idx_active_override_flag
        w.ue(0)  # one reference
        if back:
            w.put(1, 1)  # ref_pic_list_modification_flag_l0
            w.ue(0)
            w.ue(back)  # abs_diff_pic_num_minus1: the x264 picture is back + 1 pictures before this one
            w.ue(3)
        else:
            w.put(0, 1)
        w.put(0, 1)  # dec_ref_pic_marking: adaptive_ref_pic_marking_mode_flag = 0 (sliding window)
        w.se(0)  # slice_qp_delta
        w.ue(1)  # disable_deblocking_filter_idc: the copied and the exact samples stay as they are
        previous = -1
        for i, mb in enumerate(mbs):
            w.ue(mb - previous - 1)  # mb_skip_run
            w.ue(5 + 25)  # mb_type I_PCM in a P slice
            w.align()  # pcm_alignment_zero_bit
            w.raw(samples[i * PCM_BYTES : (i + 1) * PCM_BYTES])
            previous = mb
        if previous < sps.mbs - 1:
            w.ue(sps.mbs - 1 - previous)  # the rest is skipped
        w.put(1, 1)  # rbsp_stop_one_bit
        w.align()
        return bytes([(2 << 5) | NAL_SLICE]) + from_rbsp(w.getvalue())

    def _poc_lsb(self) -> int:
        return (2 * self._since_idr) % (1 << POC_LSB_BITS)

    def _skip_nal(self, back: int) -> bytes:
        """A non-reference P picture, all macroblocks skipped, predicting from the x264 picture ``back`` ago."""
        pps = self._active_pps()
        sps = self._sps[pps.sps_id]
        w = _FastBits()
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
        if pps.cabac:
            while w.pending:
                w.u(1, 1)  # cabac_alignment_one_bit
            key = ("cabac", sps.mbs, pps.pic_init_qp)
            if key not in self._skip_cache:
                self._skip_cache[key] = cabac_all_skip(sps.mbs, pps.pic_init_qp)
            w.raw(self._skip_cache[key])
        else:
            w.ue(sps.mbs)  # mb_skip_run
            w.u(1, 1)  # rbsp_stop_one_bit
            w.align()
        payload = w.getvalue()
        nal_header = bytes([NAL_SLICE])  # nal_ref_idc 0
        return nal_header + from_rbsp(payload)


PCM_BYTES = 384  # an I_PCM macroblock of 8-bit 4:2:0: 256 luma + 2 x 64 chroma samples


class _FastBits:
    """A bit writer that keeps whole bytes in a bytearray (patch pictures carry ~10-100 KB of samples);
    slices are written with it. :class:`BitWriter` (a list of bits) is left to the SPS rewrite, which
    edits bits in place."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._acc = 0
        self.pending = 0  # bits not yet in a whole byte

    def put(self, value: int, n: int) -> None:
        if n <= 0:
            return
        self._acc = (self._acc << n) | (value & ((1 << n) - 1))
        self.pending += n
        if self.pending >= 8:
            whole = self.pending // 8
            self.pending -= 8 * whole
            self._out += (self._acc >> self.pending).to_bytes(whole, "big")
            self._acc &= (1 << self.pending) - 1

    def u(self, n: int, value: int) -> None:
        """``BitWriter.u``'s order: ``n`` bits of ``value``."""
        self.put(value, n)

    def ue(self, value: int) -> None:
        code = value + 1
        self.put(code, 2 * code.bit_length() - 1)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align(self) -> None:
        """Zero bits up to the next byte boundary."""
        if self.pending:
            self.put(0, 8 - self.pending)

    def raw(self, data: bytes) -> None:
        if self.pending:
            raise ValueError("raw bytes need a byte boundary")
        self._out += data

    def getvalue(self) -> bytes:
        if self.pending:
            raise ValueError("not byte aligned")
        return bytes(self._out)


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
