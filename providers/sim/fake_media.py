"""A real, playable MP4 made without an encoder: H.264 Constrained Baseline in an ISO-BMFF file.

Browsers must be able to play the fake's videos (the web console's tests watch one play), so this is
a true H.264 stream, written by hand with the two simplest tools the standard has: the first frame is
an IDR picture of I_PCM macroblocks (raw samples, no transform or entropy coding) and every later
frame is a P picture that skips all its macroblocks (repeats the previous one). That is a few lines
of Exp-Golomb codes; the container around it is the usual `ftyp`/`moov`/`mdat` with one `avc1` track.
"""

from __future__ import annotations

import hashlib
import struct

WIDTH, HEIGHT = 160, 96  # multiples of 16: whole macroblocks, no cropping
FPS = 5
TIMESCALE = 1000
PROFILE, COMPATIBILITY, LEVEL = 66, 0xC0, 30  # Baseline, constraint_set0+1 (Constrained Baseline), 3.0
LOG2_MAX_FRAME_NUM = 8


class _Bits:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        while len(self.bits) % 8:
            self.bits.append(0)

    def raw(self, data: bytes) -> None:
        for byte in data:
            self.u(8, byte)

    def trailing(self) -> bytes:
        self.bits.append(1)
        self.align_zero()
        return bytes(int("".join(map(str, self.bits[i : i + 8])), 2) for i in range(0, len(self.bits), 8))


def _nal(ref_idc: int, kind: int, rbsp: bytes) -> bytes:
    """A NAL unit: header byte plus the payload with emulation prevention (no 00 00 0x, x <= 3)."""
    out, zeros = bytearray([(ref_idc << 5) | kind]), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _sps() -> bytes:
    b = _Bits()
    b.u(8, PROFILE)
    b.u(8, COMPATIBILITY)
    b.u(8, LEVEL)
    b.ue(0)  # seq_parameter_set_id
    b.ue(LOG2_MAX_FRAME_NUM - 4)
    b.ue(2)  # pic_order_cnt_type 2: output order = decoding order
    b.ue(1)  # max_num_ref_frames
    b.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    b.ue(WIDTH // 16 - 1)
    b.ue(HEIGHT // 16 - 1)
    b.u(1, 1)  # frame_mbs_only_flag
    b.u(1, 1)  # direct_8x8_inference_flag
    b.u(1, 0)  # frame_cropping_flag
    b.u(1, 0)  # vui_parameters_present_flag
    return _nal(3, 7, b.trailing())


def _pps() -> bytes:
    b = _Bits()
    b.ue(0)  # pic_parameter_set_id
    b.ue(0)  # seq_parameter_set_id
    b.u(1, 0)  # entropy_coding_mode_flag: CAVLC
    b.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    b.ue(0)  # num_slice_groups_minus1
    b.ue(0)  # num_ref_idx_l0_default_active_minus1
    b.ue(0)  # num_ref_idx_l1_default_active_minus1
    b.u(1, 0)  # weighted_pred_flag
    b.u(2, 0)  # weighted_bipred_idc
    b.se(0)  # pic_init_qp_minus26
    b.se(0)  # pic_init_qs_minus26
    b.se(0)  # chroma_qp_index_offset
    b.u(1, 0)  # deblocking_filter_control_present_flag
    b.u(1, 0)  # constrained_intra_pred_flag
    b.u(1, 0)  # redundant_pic_cnt_present_flag
    return _nal(3, 8, b.trailing())


def _idr(key: str) -> bytes:
    """The first picture: every macroblock I_PCM, a colour gradient whose hue comes from `key`."""
    b = _Bits()
    b.ue(0)  # first_mb_in_slice
    b.ue(7)  # slice_type: I (all slices)
    b.ue(0)  # pic_parameter_set_id
    b.u(LOG2_MAX_FRAME_NUM, 0)  # frame_num
    b.ue(0)  # idr_pic_id
    b.u(1, 0)  # no_output_of_prior_pics_flag
    b.u(1, 0)  # long_term_reference_flag
    b.se(0)  # slice_qp_delta
    cb, cr = (64 + d % 128 for d in hashlib.sha1(key.encode()).digest()[:2])
    for mb_y in range(HEIGHT // 16):
        for mb_x in range(WIDTH // 16):
            b.ue(25)  # mb_type I_PCM
            b.align_zero()  # pcm_alignment_zero_bit
            # Luma 16..235 (never 0: early decoders refused zero PCM samples), brighter to the right/bottom.
            luma = bytes(
                16 + (219 * (mb_x * 16 + x + mb_y * 16 + y)) // (WIDTH + HEIGHT)
                for y in range(16)
                for x in range(16)
            )
            b.raw(luma + bytes([cb]) * 64 + bytes([cr]) * 64)
    return _nal(3, 5, b.trailing())


def _skipped(frame_num: int) -> bytes:
    """A P picture that repeats the previous one: all its macroblocks skipped."""
    b = _Bits()
    b.ue(0)  # first_mb_in_slice
    b.ue(5)  # slice_type: P (all slices)
    b.ue(0)  # pic_parameter_set_id
    b.u(LOG2_MAX_FRAME_NUM, frame_num % (1 << LOG2_MAX_FRAME_NUM))
    b.u(1, 0)  # num_ref_idx_active_override_flag
    b.u(1, 0)  # ref_pic_list_modification_flag_l0
    b.u(1, 0)  # adaptive_ref_pic_marking_mode_flag (sliding window)
    b.se(0)  # slice_qp_delta
    b.ue(WIDTH // 16 * (HEIGHT // 16))  # mb_skip_run: all of them
    return _nal(2, 1, b.trailing())


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _moov(sizes: list[int], chunk_offset: int, sps: bytes, pps: bytes) -> bytes:
    delta = TIMESCALE // FPS
    duration = delta * len(sizes)
    avcc = _box(
        b"avcC",
        bytes([1, PROFILE, COMPATIBILITY, LEVEL, 0xFF, 0xE1]),
        struct.pack(">H", len(sps)),
        sps,
        bytes([1]),
        struct.pack(">H", len(pps)),
        pps,
    )
    avc1 = _box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),
        bytes(16),
        struct.pack(">HHII", WIDTH, HEIGHT, 0x480000, 0x480000),
        bytes(4),
        struct.pack(">H", 1),
        bytes(32),
        struct.pack(">Hh", 0x18, -1),
        avcc,
    )
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        _full(b"stts", 0, 0, struct.pack(">III", 1, len(sizes), delta)),
        _full(b"stss", 0, 0, struct.pack(">II", 1, 1)),
        _full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(sizes), 1)),
        _full(b"stsz", 0, 0, struct.pack(">II", 0, len(sizes)), struct.pack(f">{len(sizes)}I", *sizes)),
        _full(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset)),
    )
    minf = _box(
        b"minf",
        _full(b"vmhd", 0, 1, bytes(8)),
        _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1))),
        stbl,
    )
    mdia = _box(
        b"mdia",
        _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, duration, 0x55C4, 0)),
        _full(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00"),
        minf,
    )
    tkhd = _full(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII", 0, 0, 1, 0, duration),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0),
        _MATRIX,
        struct.pack(">II", WIDTH << 16, HEIGHT << 16),
    )
    mvhd = _full(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, TIMESCALE, duration),
        struct.pack(">IH10x", 0x10000, 0x100),
        _MATRIX,
        bytes(24),
        struct.pack(">I", 2),
    )
    return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))


def make_mp4(duration: int, key: str) -> bytes:
    """A playable H.264 MP4 of `duration` seconds (at least one frame): a still picture coloured by `key`."""
    sps, pps = _sps(), _pps()
    samples = [_idr(key)] + [_skipped(n) for n in range(1, max(1, duration * FPS))]
    samples = [struct.pack(">I", len(s)) + s for s in samples]  # length-prefixed NAL units (avcC: 4 bytes)
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")
    sizes = [len(s) for s in samples]
    moov_len = len(_moov(sizes, 0, sps, pps))
    moov = _moov(sizes, len(ftyp) + moov_len + 8, sps, pps)
    return ftyp + moov + _box(b"mdat", *samples)
