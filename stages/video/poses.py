"""Which picture of each character every frame shows: the character tracks of a timeline, per frame.

A :class:`Pose` is what a character looks like in one frame: its picture (expression, eyes and
mouth already chosen), whether it is dimmed, and how many pixels its breath lifts it. The
segments renderer draws each distinct pose once; :func:`character_states` numbers them, so a
frame's characters are a tuple of small integers and runs of equal frames are found by comparing
integers (:func:`stages.video.frames.frame_runs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.video.timeline import CharacterTrack, Timeline


@dataclass(frozen=True)
class Pose:
    """One character's look in a frame."""

    image: str
    dimmed: bool = False
    lift: int = 0


def character_states(timeline: Timeline) -> tuple[np.ndarray, list[list[Pose]]]:
    """``(states, poses)``: ``states[c, f]`` indexes ``poses[c]``, the look of character ``c`` in frame ``f``."""
    n = timeline.frames
    states = np.zeros((len(timeline.characters), n), dtype=np.int32)
    poses: list[list[Pose]] = []
    for c, track in enumerate(timeline.characters):
        images, codes = _track_codes(track, timeline)
        dimmed = _mask(track.dimmed, timeline) if track.dim < 1 else np.zeros(n, dtype=bool)
        lift = _lifts(track, timeline)
        key = (codes.astype(np.int64) * 2 + dimmed) * 64 + lift
        unique, inverse = np.unique(key, return_inverse=True)
        states[c] = inverse.reshape(-1)
        poses.append([Pose(images[int(k) // 128], bool((int(k) // 64) % 2), int(k) % 64) for k in unique])
    return states, poses


def _track_codes(track: CharacterTrack, timeline: Timeline) -> tuple[list[str], np.ndarray]:
    """The distinct pictures of ``track`` and, per frame, the index of the one shown."""
    n = timeline.frames
    if not track.expressions:  # an older timeline: base, mouth_open wins over eyes_closed
        images = [track.base, track.mouth_open or track.base, track.eyes_closed or track.base]
        codes = np.zeros(n, dtype=np.int32)
        if track.eyes_closed:
            codes[_mask(track.blinks, timeline)] = 2
        if track.mouth_open:
            codes[_mask(track.mouth_open_intervals, timeline)] = 1
        return images, codes
    names = list(track.expressions)
    expression = np.full(n, names.index(track.default_expression) if track.default_expression in names else 0, dtype=np.int32)
    for span in track.expression_spans:
        if span.expression in names:
            expression[timeline.frame(span.start) : timeline.frame(span.end)] = names.index(span.expression)
    eyes = _mask(track.blinks, timeline).astype(np.int32)
    mouth = np.zeros(n, dtype=np.int32)
    for span in track.mouth:
        mouth[timeline.frame(span.start) : timeline.frame(span.end)] = 1 if span.state == "half" else 2
    images = []
    for name in names:
        pictures = track.expressions[name]
        for row in (pictures.eyes_open, pictures.eyes_closed):
            images += [row.closed, row.half, row.open]
    return images, (expression * 6 + eyes * 3 + mouth).astype(np.int32)


def _mask(intervals, timeline: Timeline) -> np.ndarray:
    mask = np.zeros(timeline.frames, dtype=bool)
    for a, b in intervals:
        mask[timeline.frame(a) : timeline.frame(b)] = True
    return mask


def _lifts(track: CharacterTrack, timeline: Timeline) -> np.ndarray:
    if track.breath is None or track.breath.amplitude <= 0:
        return np.zeros(timeline.frames, dtype=np.int64)
    b = track.breath
    t = np.arange(timeline.frames) / timeline.fps
    lift = np.rint(b.amplitude * (1 - np.cos(2 * np.pi * (t / b.period + b.phase))) / 2)
    return np.clip(lift, 0, 63).astype(np.int64)
