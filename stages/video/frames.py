"""Pictures for the segments renderer: what each frame shows, and each distinct picture drawn once.

:func:`frame_runs` cuts the timeline into runs of identical frames (a slide with its subtitle and the
characters' current mouth/eye state) and single transition frames. :class:`Compositor` draws a run's
picture (background, slide, characters, libass-rendered subtitle); :class:`Transition` draws the
transition frames between the pictures on either side. Pictures are handed on as raw yuv420p,
converted from RGB once per cached layer (a slide, a cue's box, a character's box) rather than once
per frame.

Layers, bottom to top: the background, the slide, the characters, the subtitle. A slide is drawn
contain-fitted and centred over the background with its own alpha, so the background shows only
where the slide is transparent or does not reach. The slides stage writes opaque full-frame slides
for plain colour backgrounds (the fast path: nothing to compose) and transparent ones, with text on
panels, for a section override or an image/video default background. The background of a slide is the one in effect at the slide's start (its
section's override, else the default) and moves with the slide in a transition; a video background
loops from the start of its override (the default one from 0), like Remotion's ``<Loop>``.

Pictures that do not change are drawn once (the fast path). Only a slide whose background is a
video *and* visible is drawn frame by frame: the video is decoded once, in order, to raw yuv420p
frames fitted to the output size (:class:`VideoLoop`), and the slide, characters and subtitle are
blended over each frame as premultiplied yuv420p layers (:class:`Layer`). Transitions touch the
two slides (with their backgrounds) only, a fade dipping through the new slide's background alone;
characters and the subtitle are drawn over the transition each frame, so they stay still and blink
or talk through it.

Colour: RGB becomes limited-range BT.709 yuv420p (what the stream is tagged as, and what browsers
assume for HD) here and in every ffmpeg conversion of the renderer.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from stages.base import Cancelled, InputError
from stages.process import ProcessError, kill_group
from stages.video.ass import write_ass
from stages.video.poses import character_states
from stages.video.timeline import Background, Timeline

XFADE_NAMES = {"fade": "fade", "slide": "slideleft", "wipe": "wipeleft"}

# Character states: which image a character shows.
BASE, MOUTH, EYES = 0, 1, 2


@dataclass(frozen=True)
class Picture:
    """What a frame shows: a slide, a cue (or -1), each character's state and the frame of the
    slide's moving (video) background (-1: the background is still or hidden)."""

    slide: int
    cue: int
    characters: tuple[int, ...]
    background: int = -1


@dataclass(frozen=True)
class Run:
    """``count`` frames from ``start``: a held picture, or one transition frame (``step`` of ``steps``)."""

    start: int
    count: int
    picture: Picture
    transition_from: Picture | None = None
    step: int = 0
    steps: int = 0


def frame_runs(timeline: Timeline) -> list[Run]:
    """The whole video as runs of identical frames and single transition frames."""
    n = timeline.frames
    frame = timeline.frame
    slide = np.zeros(n, dtype=np.int32)
    for i, item in enumerate(timeline.slides):
        slide[frame(item.start) : frame(item.end)] = i
    cue = np.full(n, -1, dtype=np.int32)
    for i, item in enumerate(timeline.subtitles):
        cue[frame(item.start) : frame(item.end)] = i
    states, _ = character_states(timeline)  # each character's pose (picture, dimmed, breath lift) per frame
    moving = moving_backgrounds(timeline)
    background = np.full(n, -1, dtype=np.int64)  # frame of the slide's video background
    for i, origin in moving.items():
        a, b = frame(timeline.slides[i].start), frame(timeline.slides[i].end)
        background[a:b] = np.arange(a, b) - origin
    transition = np.zeros(n, dtype=np.int32)  # 1-based step inside a transition, 0 outside
    steps_at = np.zeros(n, dtype=np.int32)
    for i, item in enumerate(timeline.slides):
        if i == 0 or item.transition_in.type == "none" or item.transition_in.duration <= 0:
            continue
        a = frame(item.start)
        b = min(n, frame(item.start + item.transition_in.duration))
        transition[a:b] = np.arange(1, b - a + 1)
        steps_at[a:b] = b - a
    runs: list[Run] = []
    f = 0
    while f < n:
        picture = Picture(int(slide[f]), int(cue[f]), tuple(int(s) for s in states[:, f]), int(background[f]))
        if transition[f]:
            previous = int(slide[f]) - 1
            behind = f - moving[previous] if previous in moving else -1
            before = Picture(previous, picture.cue, picture.characters, behind)
            runs.append(Run(f, 1, picture, before, int(transition[f]) - 1, int(steps_at[f])))
            f += 1
            continue
        g = f + 1
        while (
            g < n and not transition[g] and slide[g] == slide[f] and cue[g] == cue[f] and background[g] == background[f] < 0
            and (states[:, g] == states[:, f]).all()
        ):
            g += 1
        runs.append(Run(f, g - f, picture))
        f = g
    return runs


def slide_background(timeline: Timeline, slide: int) -> tuple[Background, float]:
    """The background under slide ``slide`` and the time its loop starts (an override's start, else 0)."""
    t = timeline.slides[slide].start + 1e-6
    for item in timeline.background.overrides:
        if item.start <= t < item.end:
            return item.background, item.start
    return timeline.background.default, 0.0


def moving_backgrounds(timeline: Timeline) -> dict[int, int]:
    """``{slide: first frame of its background's loop}`` for the slides over a *visible* video background."""
    size = (timeline.width, timeline.height)
    moving = {}
    for i, item in enumerate(timeline.slides):
        background, origin = slide_background(timeline, i)
        if background.type == "video" and background.path and not slide_covers_frame(item.image, size):
            moving[i] = timeline.frame(origin)
    return moving


def slide_covers_frame(path: str | Path, size: tuple[int, int]) -> bool:
    """True when the slide, contain-fitted, is opaque over the whole frame (the background is hidden)."""
    with Image.open(path) as image:
        alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
        if not alpha and image.size[0] * size[1] == image.size[1] * size[0]:
            return True  # opaque and the frame's shape: nothing to decode
    return bool(slide_rgba(path, size)[..., 3].min() == 255)


def slide_rgba(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """The slide as a full-frame RGBA layer: contain-fitted, centred, transparent around it."""
    with Image.open(path) as image:
        image = image.convert("RGBA")
        if image.size != size:
            image = ImageOps.contain(image, size, Image.LANCZOS)
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        layer.paste(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
    return np.asarray(layer).copy()


@dataclass
class Encode:
    """One picture for x264 (a held picture or a transition step), whether it starts a GOP (IDR),
    and the copies spliced after it: ``(back, count)`` = ``count`` frames of the x264 picture
    ``back`` pictures before it (0: itself; see :class:`stages.video.h264.Splicer`)."""

    run: Run
    idr: bool
    spans: list[tuple[int, int]]


def encode_plan(runs: list[Run], *, refs: int, keyint: int, max_copies: int) -> list[Encode]:
    """Which runs x264 encodes and which are copies of one of the last ``refs`` encoded pictures.

    A GOP (IDR picture) starts at each slide's first frame and at the first encoded picture at
    least ``keyint`` frames after the last IDR; copies never reach back past an IDR. At most
    ``max_copies`` copies follow one encoded picture (the picture is encoded again after that).
    """
    plan: list[Encode] = []
    window: list[Picture | None] = []  # encoded since the last IDR, newest last; None: a transition frame
    last_idr = 0
    for run in runs:
        held = run.transition_from is None
        if held and plan:
            recent = window[-refs:]
            back = next((len(recent) - 1 - i for i in range(len(recent) - 1, -1, -1) if recent[i] == run.picture), None)
            if back is not None and sum(c for _, c in plan[-1].spans) + run.count <= max_copies:
                _add_span(plan[-1].spans, back, run.count)
                continue
        remaining = run.count
        while remaining > 0:
            idr = not plan or run.picture.slide != plan[-1].run.picture.slide or run.start - last_idr >= keyint
            if idr:
                window = []
                last_idr = run.start
            plan.append(Encode(run, idr, []))
            window.append(run.picture if held else None)
            copies = min(remaining - 1, max_copies)
            _add_span(plan[-1].spans, 0, copies)
            remaining -= 1 + copies
    return plan


def patch_plan(plan: list[Encode], compositor: "Compositor", *, refs: int, max_mbs: int) -> list[bool]:
    """Which encoded pictures are *patch pictures* (see :meth:`stages.video.h264.Splicer.patch`)
    instead of x264 pictures: a held picture that differs from the last x264 picture only in
    characters whose poses keep their place and size (a mouth, the eyes, an expression; not a
    breath's lift), in at most ``max_mbs`` macroblocks, with fewer than ``refs - 1`` patches since
    that x264 picture. Decided before encoding, as x264 must know its keyframes up front; the
    macroblocks are worked out from the character pictures (:meth:`Compositor.pose_change`).
    """
    patches: list[bool] = []
    base: Picture | None = None  # the last x264 picture, if a held one
    run = 0
    for item in plan:
        picture = item.run.picture
        patch = (
            base is not None and not item.idr and item.run.transition_from is None and run < refs - 1
            and picture.slide == base.slide and picture.cue == base.cue and picture.background < 0 and base.background < 0
        )
        if patch:
            total = 0
            for c, (a, b) in enumerate(zip(base.characters, picture.characters)):
                if a != b:
                    changed = compositor.pose_change(c, a, b)
                    total += max_mbs + 1 if changed is None else changed
            patch = total <= max_mbs
        patches.append(patch)
        if patch:
            run += 1
        else:
            base = picture if item.run.transition_from is None else None
            run = 0
    return patches


def changed_macroblocks(a: np.ndarray, b: np.ndarray, width: int, height: int) -> np.ndarray:
    """Raster indices (ascending) of the 16x16 macroblocks where flat yuv420p frames ``a`` and ``b`` differ."""
    mw, mh = (width + 15) // 16, (height + 15) // 16
    changed = np.zeros((mh, mw), dtype=bool)
    for pa, pb, size in zip(_planes(a, width, height), _planes(b, width, height), (16, 8, 8)):
        diff = pa != pb
        rows, cols = diff.shape
        padded = np.zeros((mh * size, mw * size), dtype=bool)
        padded[:rows, :cols] = diff
        changed |= padded.reshape(mh, size, mw, size).any(axis=(1, 3))
    return np.flatnonzero(changed)


def macroblock_samples(frame: np.ndarray, width: int, height: int, mbs: np.ndarray) -> bytes:
    """The I_PCM samples of macroblocks ``mbs`` of a flat yuv420p frame: per macroblock 256 luma,
    64 Cb and 64 Cr bytes in raster order; rows below the picture repeat its last row (as x264 pads)."""
    mw, mh = (width + 15) // 16, (height + 15) // 16
    out = []
    for plane, size in zip(_planes(frame, width, height), (16, 8, 8)):
        rows, cols = plane.shape
        if rows < mh * size or cols < mw * size:
            plane = np.pad(plane, ((0, mh * size - rows), (0, mw * size - cols)), mode="edge")
        tiles = plane.reshape(mh, size, mw, size).transpose(0, 2, 1, 3).reshape(mh * mw, size * size)
        out.append(tiles[mbs])
    return np.concatenate(out, axis=1).tobytes()


def _add_span(spans: list[tuple[int, int]], back: int, count: int) -> None:
    if count <= 0:
        return
    if spans and spans[-1][0] == back:
        spans[-1] = (back, spans[-1][1] + count)
    else:
        spans.append((back, count))


class Compositor:
    """Draws pictures at the timeline's size; everything drawn is cached by what it depends on."""

    def __init__(self, timeline: Timeline, work: Path, *, cancel: threading.Event | None = None, subtitles: bool = True):
        self.timeline = timeline
        self.size = (timeline.width, timeline.height)
        self.work = Path(work)
        self.cancel = cancel
        self._under: dict[int, np.ndarray] = {}
        self._under_yuv: dict[int, np.ndarray] = {}
        self._bases_yuv: dict[tuple[int, int], np.ndarray] = {}
        self._patches_yuv: dict[tuple[int, int, int, int], tuple[int, int, tuple[np.ndarray, ...]]] = {}
        self._current = -1
        self._sprites: dict[tuple[int, int], tuple[int, int, np.ndarray]] = {}
        self._poses = character_states(timeline)[1]
        self._pose_sprites: dict[tuple[int, int], tuple[int, int, np.ndarray]] = {}
        self._pose_changes: dict[tuple[int, int, int], int | None] = {}
        self._pictures: dict[tuple[int, str], np.ndarray] = {}
        self._subtitles = render_subtitle_overlays(timeline, self.work, cancel=cancel) if subtitles else []
        self._slide_layers: dict[int, Layer] = {}
        self._sprite_layers: dict[tuple[int, int], Layer] = {}
        self._cue_layers: dict[int, Layer] = {}
        self._loops: dict[tuple[str, str, int], VideoLoop] = {}
        self._moving = moving_backgrounds(timeline)
        self._transition: tuple[tuple, Transition] | None = None
        self._grounds_yuv: dict[tuple, np.ndarray] = {}

    def close(self) -> None:
        """Stop the background video decoders (if any)."""
        for loop in self._loops.values():
            loop.close()
        self._loops.clear()

    def __enter__(self) -> "Compositor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frame_yuv(self, run: Run) -> np.ndarray:
        """The frame of ``run`` (a held picture, or one step of a transition) as flat yuv420p."""
        if run.transition_from is None:
            return self.picture_yuv(run.picture)
        before, after = run.transition_from, run.picture
        kind = self.timeline.slides[after.slide].transition_in.type
        key = (before.slide, before.background, after.slide, after.background, kind, run.steps)
        if self._transition is None or self._transition[0] != key:
            ground = self.ground_yuv(after) if kind == "fade" else None
            self._transition = (
                key, Transition(self.base_yuv(before), self.base_yuv(after), kind, run.steps, self.size, through=ground)
            )
        frame = self._transition[1].frame(run.step)
        self._draw_over(frame, after)
        return frame

    def base_yuv(self, picture: Picture) -> np.ndarray:
        """Background and slide of ``picture`` (no characters, no subtitle) as flat yuv420p (do not modify)."""
        self._evict(picture.slide)
        if picture.background < 0:
            return self._under_yuv_of(picture.slide)
        frame = self._loop(picture.slide).frame(picture.background).copy()
        if picture.slide not in self._slide_layers:
            self._slide_layers[picture.slide] = Layer.from_rgba(slide_rgba(self.timeline.slides[picture.slide].image, self.size), 0, 0, self.size)
        self._slide_layers[picture.slide].over(frame, self.size)
        return frame

    def ground_yuv(self, picture: Picture) -> np.ndarray:
        """The background under ``picture``'s slide alone (no slide) as flat yuv420p: what a fade dips
        through, as Remotion shows its background track where both slides are faded out. A moving
        background gives its frame; a hidden video background its first frame (do not modify)."""
        if picture.background >= 0:
            return self._loop(picture.slide).frame(picture.background)
        background, _ = slide_background(self.timeline, picture.slide)
        key = (background.type, background.value, background.path, background.fit)  # most slides share one
        if key not in self._grounds_yuv:
            self._grounds_yuv.clear()  # one background at a time
            self._grounds_yuv[key] = rgb_to_yuv420(np.asarray(background_image(background, self.size).convert("RGB")))
        return self._grounds_yuv[key]

    def _draw_over(self, frame: np.ndarray, picture: Picture) -> None:
        """Characters and subtitle of ``picture`` blended over ``frame`` in place."""
        for c, state in enumerate(picture.characters):
            self._sprite_layer(c, state).over(frame, self.size)
        if picture.cue >= 0:
            self._cue_layer(picture.cue).over(frame, self.size)

    def _loop(self, slide: int) -> "VideoLoop":
        background, _ = slide_background(self.timeline, slide)
        key = (str(background.path), background.fit, self._moving.get(slide, 0))
        if key not in self._loops:
            self._loops[key] = VideoLoop(Path(str(background.path)), background.fit, self.size, self.timeline.fps)
        return self._loops[key]

    def picture_yuv(self, picture: Picture) -> np.ndarray:
        """``picture`` as one raw yuv420p frame (flat: Y, then U, then V; BT.709 limited range).

        Bases and character boxes are converted once and cached, so a picture costs two memcpys
        and no colour conversion; only the slide on screen and the one before it stay cached.
        Over a moving background every frame is blended from layers instead.
        """
        if picture.background >= 0:
            frame = self.base_yuv(picture).copy()
            self._draw_over(frame, picture)
            return frame
        self._evict(picture.slide)
        frame = self._base_yuv(picture.slide, picture.cue).copy()
        planes = _planes(frame, *self.size)
        for c, state in enumerate(picture.characters):
            x0, y0, patch = self._patch_yuv(picture.slide, picture.cue, c, state)
            _paste(planes, patch, x0, y0)
        return frame

    def _base_yuv(self, slide: int, cue: int) -> np.ndarray:
        """The slide with the cue's subtitle: the slide converted once, then only the cue's box."""
        key = (slide, cue)
        if key not in self._bases_yuv:
            frame = self._under_yuv_of(slide)
            if cue >= 0:
                frame = frame.copy()
                x, y, overlay = self._subtitles[cue]
                x0, y0, x1, y1 = _even_box(x, y, overlay.shape[1], overlay.shape[0], *self.size)
                if x1 > x0 and y1 > y0:
                    box = self.under(slide)[y0:y1, x0:x1].copy()
                    _blend(box, overlay, x - x0, y - y0)
                    _paste(_planes(frame, *self.size), _planes(rgb_to_yuv420(box), x1 - x0, y1 - y0), x0, y0)
            self._bases_yuv[key] = frame
        return self._bases_yuv[key]

    def _patch_yuv(self, slide: int, cue: int, character: int, state: int) -> tuple[int, int, tuple[np.ndarray, ...]]:
        x, y, sprite = self.pose_sprite(character, state)
        x0, y0, x1, y1 = _even_box(x, y, sprite.shape[1], sprite.shape[0], *self.size)
        overlapping = cue if cue >= 0 and _overlaps(self._subtitles[cue], (x0, y0, x1, y1)) else -1
        key = (slide, overlapping, character, state)
        if key not in self._patches_yuv:
            # Blended in YUV from layers converted once per pose, not in RGB and converted per slide:
            # the conversion is affine, so only rounding differs (at most 1 level).
            frame = self._under_yuv_of(slide)
            patch = tuple(p[y0 // k : y1 // k, x0 // k : x1 // k].copy() for p, k in zip(_planes(frame, *self.size), (1, 2, 2)))
            self._sprite_layer(character, state).over_box(patch, (x0, y0, x1, y1))
            if overlapping >= 0:
                self._cue_layer(overlapping).over_box(patch, (x0, y0, x1, y1))
            self._patches_yuv[key] = (x0, y0, patch)
        return self._patches_yuv[key]

    def _under_yuv_of(self, slide: int) -> np.ndarray:
        if slide not in self._under_yuv:
            self._under_yuv[slide] = rgb_to_yuv420(self.under(slide))
        return self._under_yuv[slide]

    def _sprite_layer(self, character: int, state: int) -> "Layer":
        if (character, state) not in self._sprite_layers:
            x, y, pixels = self.pose_sprite(character, state)
            self._sprite_layers[(character, state)] = Layer.from_rgba(pixels, x, y, self.size)
        return self._sprite_layers[(character, state)]

    def _cue_layer(self, cue: int) -> "Layer":
        if cue not in self._cue_layers:
            if len(self._cue_layers) >= 4:  # cues come in time order: keep only the last few
                del self._cue_layers[next(iter(self._cue_layers))]
            x, y, pixels = self._subtitles[cue]
            self._cue_layers[cue] = Layer.from_rgba(pixels, x, y, self.size)
        return self._cue_layers[cue]

    def _evict(self, slide: int) -> None:
        if slide in (self._current, self._current - 1):  # the previous slide stays for its transition
            return
        self._current = slide
        keep = {slide, slide - 1}
        for cache in (self._under, self._under_yuv, self._bases_yuv, self._patches_yuv, self._slide_layers):
            for key in [k for k in cache if (k if isinstance(k, int) else k[0]) not in keep]:
                del cache[key]
        wanted = set()
        for i in keep:
            if i in self._moving:
                background, _ = slide_background(self.timeline, i)
                wanted.add((str(background.path), background.fit, self._moving[i]))
        for key in [k for k in self._loops if k not in wanted]:
            self._loops.pop(key).close()

    def under(self, slide: int) -> np.ndarray:
        """Background and slide, without characters or subtitles."""
        if slide not in self._under:
            item = self.timeline.slides[slide]
            background, _ = slide_background(self.timeline, slide)
            if background.type == "video":  # hidden by the slide here (else the picture is a moving one)
                canvas = Image.new("RGB", self.size, "#000000")
            else:
                canvas = background_image(background, self.size)
            layer = Image.fromarray(slide_rgba(item.image, self.size), "RGBA")
            canvas = Image.alpha_composite(canvas.convert("RGBA"), layer).convert("RGB")
            self._under[slide] = np.asarray(canvas).copy()
        return self._under[slide]

    def pose_sprite(self, character: int, pose: int) -> tuple[int, int, np.ndarray]:
        """A character in pose ``pose`` (see :func:`character_states`) as RGBA at its place: ``(x, y, pixels)``.

        Each picture is read and resized once; a dimmed pose darkens it, a breath moves it up.
        """
        key = (character, pose)
        if key not in self._pose_sprites:
            track = self.timeline.characters[character]
            look = self._poses[character][pose]
            if (character, look.image) not in self._pictures:
                with Image.open(look.image) as image:
                    image = image.convert("RGBA").resize((round(track.width), round(track.height)), Image.LANCZOS)
                self._pictures[(character, look.image)] = np.asarray(image).copy()
            pixels = self._pictures[(character, look.image)]
            if look.dimmed:
                pixels = pixels.copy()
                pixels[..., :3] = np.rint(pixels[..., :3] * np.float32(track.dim)).astype(np.uint8)
            self._pose_sprites[key] = (round(track.x), round(track.y) - look.lift, pixels)
        return self._pose_sprites[key]

    def pose_change(self, character: int, a: int, b: int) -> int | None:
        """How many macroblocks change when ``character`` goes from pose ``a`` to ``b``, or None
        when the pose moves or changes size (then the whole picture is encoded)."""
        key = (character, min(a, b), max(a, b))
        if key not in self._pose_changes:
            xa, ya, pa = self.pose_sprite(character, a)
            xb, yb, pb = self.pose_sprite(character, b)
            if (xa, ya, pa.shape) != (xb, yb, pb.shape):
                self._pose_changes[key] = None
            else:
                ys, xs = np.nonzero((pa != pb).any(axis=2))
                cells = np.unique(((ya + ys) // 16) * 65536 + (xa + xs) // 16)
                self._pose_changes[key] = int(cells.size)
        return self._pose_changes[key]

    def sprite(self, character: int, state: int) -> tuple[int, int, np.ndarray]:
        """A character's ``base``/``mouth_open``/``eyes_closed`` image (``BASE``, ``MOUTH``, ``EYES``)
        as RGBA at its place: ``(x, y, pixels)`` (the one-filter-graph renderer's overlays)."""
        key = (character, state)
        if key not in self._sprites:
            track = self.timeline.characters[character]
            path = {BASE: track.base, MOUTH: track.mouth_open, EYES: track.eyes_closed}[state] or track.base
            with Image.open(path) as image:
                image = image.convert("RGBA").resize((round(track.width), round(track.height)), Image.LANCZOS)
            self._sprites[key] = (round(track.x), round(track.y), np.asarray(image).copy())
        return self._sprites[key]


def background_image(background: Background, size: tuple[int, int]) -> Image.Image:
    """A colour or image background at ``size`` (a video background shows its first frame here)."""
    if background.type == "color":
        return Image.new("RGB", size, background.value or "#000000")
    path = Path(background.path or "")
    if background.type == "video":
        return _first_video_frame(path, size)
    with Image.open(path) as image:
        return _fit(image.convert("RGB"), size, background.fit)


def _fit(image: Image.Image, size: tuple[int, int], fit: str) -> Image.Image:
    if fit == "cover":
        return ImageOps.fit(image, size, Image.LANCZOS)
    canvas = Image.new("RGB", size, "#000000")
    inner = ImageOps.contain(image, size, Image.LANCZOS)
    canvas.paste(inner, ((size[0] - inner.width) // 2, (size[1] - inner.height) // 2))
    return canvas


def _first_video_frame(path: Path, size: tuple[int, int]) -> Image.Image:
    import subprocess

    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-vf", f"scale={size[0]}:{size[1]}:force_original_aspect_ratio=increase,crop={size[0]}:{size[1]}", "-"],
        capture_output=True, check=False, timeout=60,
    ).stdout
    if len(raw) < size[0] * size[1] * 3:
        return Image.new("RGB", size, "#000000")
    return Image.frombytes("RGB", size, raw[: size[0] * size[1] * 3])


def render_subtitle_overlays(timeline: Timeline, work: Path, *, cancel: threading.Event | None = None) -> "SubtitleOverlays":
    """Each cue drawn by libass once, as a cropped RGBA overlay ``(x, y, pixels)``, indexed by cue.

    Drawn :data:`CUE_CHUNK` cues at a time when first asked for, keeping the last two chunks: an
    hour of subtitles at 1080p is about 0.5 GB of overlays, and the sheets they are cut from
    several GB more, so they are never all held at once.
    """
    return SubtitleOverlays(timeline, work, cancel=cancel)


CUE_CHUNK = 32


class SubtitleOverlays:
    """The cue overlays of :func:`render_subtitle_overlays`, a chunk of cues drawn at a time."""

    def __init__(self, timeline: Timeline, work: Path, *, cancel: threading.Event | None = None):
        self._timeline, self._work, self._cancel = timeline, Path(work), cancel
        self._chunks: dict[int, list[tuple[int, int, np.ndarray]]] = {}

    def __len__(self) -> int:
        return len(self._timeline.subtitles)

    def __getitem__(self, cue: int) -> tuple[int, int, np.ndarray]:
        if not 0 <= cue < len(self):
            raise IndexError(cue)
        chunk = cue // CUE_CHUNK
        if chunk not in self._chunks:
            if len(self._chunks) >= 2:  # cues are asked for in time order: the oldest chunk is done
                del self._chunks[next(iter(self._chunks))]
            first = chunk * CUE_CHUNK
            self._chunks[chunk] = _draw_cues(self._timeline, self._work, first, min(len(self), first + CUE_CHUNK), self._cancel)
        return self._chunks[chunk][cue - chunk * CUE_CHUNK]


def _draw_cues(
    timeline: Timeline, work: Path, first: int, end: int, cancel: threading.Event | None
) -> list[tuple[int, int, np.ndarray]]:
    """Cues ``first`` to ``end`` drawn by libass, each as a cropped RGBA overlay.

    libass draws over an opaque frame, so each cue is drawn on black and on white in one ffmpeg run
    and the alpha recovered from the difference (``alpha = 255 - (white - black)``). The two are
    stacked into one frame and read from ffmpeg's stdout one cue at a time.

    The frames libass draws on are rgb24 (``format=rgb24`` before ``ass``), so the colours are the
    ASS file's exactly. (They used to be yuv420p frames from ``-f lavfi`` inputs: ffmpeg 5.1's
    ``ass`` filter then converted each colour with BT.601, the frames went back to RGB, and the
    chroma was subsampled there and again in the output: saturated colours came out paler.)
    """
    count = end - first
    w, h = timeline.width, timeline.height
    write_ass(timeline, work / "sheet.ass", cues=timeline.subtitles[first:end],
              times=[(i * 0.1, (i + 1) * 0.1) for i in range(count)])
    fonts = _fonts_dir(timeline, work)
    ass = f"ass=sheet.ass:fontsdir={fonts.name}" if fonts else "ass=sheet.ass"
    top = (h // 2) & ~1  # cues sit at the bottom: only the lower half is read back
    band = h - top
    source = "color=c={}:s={}x{}:r=10:d={:.1f},format=rgb24"
    graph = (
        f"{source.format('black', w, h, count * 0.1)},{ass},crop={w}:{band}:0:{top}[b];"
        f"{source.format('white', w, h, count * 0.1)},{ass},crop={w}:{band}:0:{top}[w];"
        "[b][w]vstack=inputs=2[sheet]"
    )
    (work / "sheet.graph").write_text(graph, encoding="utf-8")
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", "-filter_complex_script", "sheet.graph",
         "-map", "[sheet]", "-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=work, start_new_session=True,
    )
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    reader.start()
    overlays = []
    size = 2 * band * w * 3
    try:
        for _ in range(count):
            if cancel is not None and cancel.is_set():
                raise Cancelled("render was cancelled")
            raw = proc.stdout.read(size)
            if len(raw) < size:
                break
            sheet = np.frombuffer(raw, dtype=np.uint8).reshape(2 * band, w, 3)
            x, y, rgba = _matte(sheet[:band], sheet[band:])
            overlays.append((x, y + top, rgba))
        proc.stdout.close()
        proc.wait()
    except BaseException:
        kill_group(proc)
        raise
    reader.join(timeout=5)
    if proc.returncode != 0 or len(overlays) != count:
        raise ProcessError("ffmpeg (subtitles) failed", proc.returncode or 1, b"".join(errors).decode("utf-8", "replace"))
    return overlays


def _matte(black: np.ndarray, white: np.ndarray) -> tuple[int, int, np.ndarray]:
    # Where alpha > 0 some channel is below white on white or above black on black: that box is
    # found with cheap uint8 reductions, and the matte is worked out inside it only.
    h = black.shape[0]
    rows = np.flatnonzero((white.reshape(h, -1).min(axis=1) < 255) | (black.reshape(h, -1).max(axis=1) > 0))
    if len(rows) == 0:
        return 0, 0, np.zeros((1, 1, 4), dtype=np.uint8)
    band = slice(rows[0], rows[-1] + 1)
    cols = np.flatnonzero(((white[band].min(axis=0) < 255) | (black[band].max(axis=0) > 0)).any(axis=1))
    top, left = int(rows[0]), int(cols[0])
    black = black[top : rows[-1] + 1, left : cols[-1] + 1]
    white = white[top : rows[-1] + 1, left : cols[-1] + 1]
    x, y, rgba = _matte_box(black, white)
    return x + left, y + top, rgba


def _matte_box(black: np.ndarray, white: np.ndarray) -> tuple[int, int, np.ndarray]:
    diff = white.astype(np.int16) - black.astype(np.int16)
    alpha = np.clip(255 - diff.max(axis=2), 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(alpha)
    if len(ys) == 0:
        return 0, 0, np.zeros((1, 1, 4), dtype=np.uint8)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    a = alpha[y0:y1, x0:x1].astype(np.uint16)
    colour = np.where(a[..., None] > 0, (black[y0:y1, x0:x1].astype(np.uint16) * 255 + a[..., None] // 2) // np.maximum(a, 1)[..., None], 0)
    rgba = np.dstack([np.clip(colour, 0, 255).astype(np.uint8), alpha[y0:y1, x0:x1]])
    return int(x0), int(y0), rgba


def _fonts_dir(timeline: Timeline, work: Path) -> Path | None:
    """A folder (under ``work``, with a plain name) holding a link to the subtitle font file."""
    font = timeline.subtitle_style.font_file
    if not font or not Path(font).is_file():
        return None
    folder = work / "fonts"
    folder.mkdir(exist_ok=True)
    link = folder / ("subtitle" + Path(font).suffix.lower())
    if not link.exists():
        link.symlink_to(Path(font).resolve())
    return folder


def rgb_to_yuv420(rgb: np.ndarray) -> np.ndarray:
    """RGB (h, w, 3; even sizes) to flat yuv420p, BT.709 limited range (``out_color_matrix=bt709``).

    Chroma is the mean of each 2x2 block. Per-pixel (luma) and per-block (chroma), so converting an
    even-aligned box gives exactly the pixels converting the whole frame would (see
    :meth:`Compositor._base_yuv`).
    """
    h, w = rgb.shape[:2]
    f = rgb.astype(np.float32)
    y = f @ _LUMA
    y += 16.0
    sub = f[0::2, 0::2] + f[1::2, 0::2]
    sub += f[0::2, 1::2]
    sub += f[1::2, 1::2]
    sub *= 0.25
    u = sub @ _CB
    u += 128.0
    v = sub @ _CR
    v += 128.0
    out = np.empty(h * w * 3 // 2, dtype=np.uint8)
    luma = h * w
    for plane, start, end in ((y, 0, luma), (u, luma, luma + luma // 4), (v, luma + luma // 4, luma * 3 // 2)):
        np.rint(plane, out=plane)
        np.clip(plane, 0.0, 255.0, out=plane)
        out[start:end] = plane.ravel()
    return out


def _bt709_limited() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the RGB (0-255) to limited-range Y, Cb, Cr matrix of BT.709 (offsets 16, 128, 128 apart)."""
    kr, kb = 0.2126, 0.0722
    kg = 1.0 - kr - kb
    luma = np.array([kr, kg, kb])
    cb = (np.array([0.0, 0.0, 1.0]) - luma) / (2 * (1 - kb))
    cr = (np.array([1.0, 0.0, 0.0]) - luma) / (2 * (1 - kr))
    return tuple((row * scale / 255.0).astype(np.float32) for row, scale in ((luma, 219.0), (cb, 224.0), (cr, 224.0)))


_LUMA, _CB, _CR = _bt709_limited()

# the arguments that make an ffmpeg conversion agree with rgb_to_yuv420 (scale filter options)
SCALE_BT709 = "out_color_matrix=bt709:out_range=tv"
# the stream's colour description (x264 writes it into the SPS's VUI; the MP4 carries it)
COLOR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]


class Layer:
    """An RGBA image at a place, as premultiplied yuv420p planes for blending over yuv420p frames.

    Blending is linear in YUV as in RGB (the conversion is affine), so an opaque pixel comes out as
    :func:`rgb_to_yuv420` gives it and a clear one leaves the frame alone; chroma uses each 2x2
    block's mean alpha. Values are 8.8 fixed point: ``out = (frame * (256 - a) + p + 128) >> 8``.
    """

    def __init__(self, box: tuple[int, int, int, int], planes: tuple[np.ndarray, ...], keep: tuple[np.ndarray, ...]):
        self.box = box
        self.planes = planes  # premultiplied Y, U, V (uint16, x256)
        self.keep = keep  # 256 - alpha (uint16) for luma and chroma

    @classmethod
    def from_rgba(cls, rgba: np.ndarray, x: int, y: int, size: tuple[int, int]) -> "Layer":
        h, w = rgba.shape[:2]
        x0, y0, x1, y1 = _even_box(x, y, w, h, *size)
        box = np.zeros((max(0, y1 - y0), max(0, x1 - x0), 4), dtype=np.uint8)
        if box.size:
            sx0, sy0 = max(x0, x), max(y0, y)
            sx1, sy1 = min(x1, x + w), min(y1, y + h)
            if sx1 > sx0 and sy1 > sy0:
                box[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgba[sy0 - y : sy1 - y, sx0 - x : sx1 - x]
        a = box[..., 3].astype(np.float32) / 255.0
        pre = box[..., :3].astype(np.float32) * a[..., None]
        luma = pre @ _LUMA + 16.0 * a
        pm = (pre[0::2, 0::2] + pre[1::2, 0::2] + pre[0::2, 1::2] + pre[1::2, 1::2]) * 0.25
        am = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) * 0.25
        planes = tuple(np.rint(p * 256.0).astype(np.uint16) for p in (luma, pm @ _CB + 128.0 * am, pm @ _CR + 128.0 * am))
        keep = tuple(np.rint((1.0 - q) * 256.0).astype(np.uint16) for q in (a, am))
        return cls((x0, y0, x1, y1), planes, keep)

    def over(self, frame: np.ndarray, size: tuple[int, int]) -> None:
        """Blend onto the flat yuv420p ``frame`` (of ``size``) in place."""
        self.over_box(_planes(frame, *size), (0, 0, *size))

    def over_box(self, planes: tuple[np.ndarray, ...], box: tuple[int, int, int, int]) -> None:
        """Blend onto the yuv420p ``planes`` of the even-aligned frame region ``box`` in place."""
        bx0, by0, bx1, by1 = box
        x0, y0, x1, y1 = max(self.box[0], bx0), max(self.box[1], by0), min(self.box[2], bx1), min(self.box[3], by1)
        if x1 <= x0 or y1 <= y0:
            return
        lx, ly = self.box[0], self.box[1]
        for plane, pre, scale in zip(planes, self.planes, (1, 2, 2)):
            keep = self.keep[0 if scale == 1 else 1]
            rows = slice((y0 - ly) // scale, (y1 - ly) // scale)
            cols = slice((x0 - lx) // scale, (x1 - lx) // scale)
            region = plane[(y0 - by0) // scale : (y1 - by0) // scale, (x0 - bx0) // scale : (x1 - bx0) // scale]
            mixed = region.astype(np.uint16)
            mixed *= keep[rows, cols]
            mixed += pre[rows, cols]
            mixed += 128
            mixed >>= 8
            region[...] = mixed


def video_fit_filter(fit: str, size: tuple[int, int], fps: int) -> str:
    """The filter chain that turns a background video into yuv420p frames of ``size`` at ``fps``."""
    w, h = size
    if fit == "contain":
        scaled = f"scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2:{SCALE_BT709},pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:black"
    else:
        scaled = f"scale={w}:{h}:force_original_aspect_ratio=increase:{SCALE_BT709},crop={w}:{h}"
    return f"fps={fps},{scaled},setsar=1,format=yuv420p"


class VideoLoop:
    """A background video decoded once, in order, to yuv420p frames of ``size`` (cover or contain
    fit, BT.709) at the output's rate, looped: ``frame(k)`` is frame ``k`` of the endless loop.

    One ffmpeg decodes one pass into a pipe; frames are read as they are asked for (a render asks
    in order), so memory holds one frame. Asking for an earlier frame starts a new pass; the
    loop's length is learned at the end of the first pass.
    """

    def __init__(self, path: Path, fit: str, size: tuple[int, int], fps: int):
        self.path, self.fit, self.size, self.fps = Path(path), fit, size, fps
        self.length: int | None = None
        self._proc: subprocess.Popen | None = None
        self._next = 0
        self._last: tuple[int, np.ndarray] | None = None

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` (>= 0) of the loop, flat yuv420p (do not modify)."""
        while True:
            j = k % self.length if self.length else k
            if self._last is not None and self._last[0] == j:
                return self._last[1]
            if self._proc is None or j < self._next:
                self._start()
            while self._next <= j:
                data = self._read()
                if data is None:  # end of the first pass: now the length is known
                    if self._next == 0:
                        raise InputError(f"background video {self.path} has no frames")
                    self.length = self._next
                    self.close()
                    break
                self._last = (self._next, data)
                self._next += 1
            else:
                return self._last[1]

    def close(self) -> None:
        if self._proc is not None:
            kill_group(self._proc)
            self._proc = None

    def _start(self) -> None:
        self.close()
        self._proc = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(self.path), "-map", "0:v:0", "-an", "-sn",
             "-vf", video_fit_filter(self.fit, self.size, self.fps), "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._next = 0

    def _read(self) -> np.ndarray | None:
        need = self.size[0] * self.size[1] * 3 // 2
        chunks, got = [], 0
        while got < need:
            chunk = self._proc.stdout.read(need - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got < need:
            return None
        return np.frombuffer(b"".join(chunks), dtype=np.uint8)


def _planes(frame: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a flat yuv420p frame."""
    luma = w * h
    return (
        frame[:luma].reshape(h, w),
        frame[luma : luma + luma // 4].reshape(h // 2, w // 2),
        frame[luma + luma // 4 :].reshape(h // 2, w // 2),
    )


def _even_box(x: int, y: int, w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The box ``(x0, y0, x1, y1)`` covering ``w`` x ``h`` pixels at ``(x, y)``, clipped, on even pixels."""
    return max(0, x) & ~1, max(0, y) & ~1, min(width, (x + w + 1) & ~1), min(height, (y + h + 1) & ~1)


def _paste(planes: tuple[np.ndarray, ...], patch: tuple[np.ndarray, ...], x0: int, y0: int) -> None:
    """Copy yuv420p ``patch`` planes into ``planes`` at the even position ``(x0, y0)``."""
    for plane, part, scale in zip(planes, patch, (1, 2, 2)):
        plane[y0 // scale : y0 // scale + part.shape[0], x0 // scale : x0 // scale + part.shape[1]] = part


def _overlaps(overlay: tuple[int, int, np.ndarray], box: tuple[int, int, int, int]) -> bool:
    x, y, pixels = overlay
    x0, y0, x1, y1 = box
    return x < x1 and x + pixels.shape[1] > x0 and y < y1 and y + pixels.shape[0] > y0


def _blend(frame: np.ndarray, rgba: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend ``rgba`` onto ``frame`` at ``(x, y)`` in place, clipped to the frame."""
    h, w = frame.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w, x + rgba.shape[1]), min(h, y + rgba.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    src = rgba[y0 - y : y1 - y, x0 - x : x1 - x]
    alpha = src[..., 3:4].astype(np.uint16)
    dst = frame[y0:y1, x0:x1].astype(np.uint16)
    frame[y0:y1, x0:x1] = ((src[..., :3].astype(np.uint16) * alpha + dst * (255 - alpha) + 127) // 255).astype(np.uint8)


class Transition:
    """The frames of a transition between two flat yuv420p pictures, drawn in numpy one at a time.

    Step ``k`` of ``steps`` shows ``k / steps`` of the way from ``before`` to ``after`` (step 0 is
    all ``before``). ``fade`` dips through the background (``through``, the background alone): the
    first half fades ``before`` out to it, the second half fades ``after`` in from it, so two
    different texts are never on screen together (a cross-fade showed both, one over the other,
    for half its length). Weights are 8-bit; a pixel equal in the pictures it blends stays exactly
    itself. ``wipe`` reveals ``after`` from the right edge (xfade's ``wipeleft``) and ``slide``
    pushes ``before`` out to the left (``slideleft``). Working on the yuv420p planes directly costs
    a few milliseconds a frame and no process, where an ``xfade`` run converted to yuv444p and back.
    """

    def __init__(self, before: np.ndarray, after: np.ndarray, kind: str, steps: int, size: tuple[int, int],
                 *, through: np.ndarray | None = None):
        if kind not in XFADE_NAMES:
            raise ValueError(f"unknown transition {kind!r}")
        if kind == "fade" and through is None:
            raise ValueError("a fade needs the background it dips through")
        self.kind = kind
        self.steps = max(1, steps)
        self.size = size
        self._before = before
        self._after = after
        if kind == "fade":
            self._a16 = before.astype(np.uint16)
            self._b16 = after.astype(np.uint16)
            self._g16 = through.astype(np.uint16)
            self._t1 = np.empty_like(self._a16)
            self._t2 = np.empty_like(self._a16)

    def frame(self, step: int) -> np.ndarray:
        """Step ``step`` (0-based) as a flat yuv420p frame (a new array)."""
        progress = min(max(step / self.steps, 0.0), 1.0)  # share of ``after``
        if self.kind == "fade":
            return self._dip(progress)
        w, h = self.size
        split = int(w * (1.0 - progress)) & ~1  # luma columns left of the edge; even, so chroma is split / 2
        out = np.empty_like(self._before)
        for o, a, b, scale in zip(_planes(out, w, h), _planes(self._before, w, h), _planes(self._after, w, h), (1, 2, 2)):
            cut = split // scale
            width = w // scale
            if self.kind == "wipe":
                o[:, :cut] = a[:, :cut]
                o[:, cut:] = b[:, cut:]
            else:  # slide
                o[:, :cut] = a[:, width - cut :]
                o[:, cut:] = b[:, : width - cut]
        return out

    def _dip(self, progress: float) -> np.ndarray:
        """First half: ``before`` towards the background; second half: the background towards ``after``."""
        if progress < 0.5:
            picture, share = self._a16, 1.0 - 2.0 * progress
        else:
            picture, share = self._b16, 2.0 * progress - 1.0
        weight = int(round(256 * share))  # of the picture; the rest is the background
        np.multiply(picture, weight, out=self._t1)
        np.multiply(self._g16, 256 - weight, out=self._t2)
        self._t1 += self._t2
        self._t1 += 128
        self._t1 >>= 8
        return self._t1.astype(np.uint8)
