import React from 'react';
import {Img, useCurrentFrame} from 'remotion';
import {inIntervals, pyRound, toFrame} from './props';
import type {CharacterTrack, MouthImages, Timeline} from './timeline.generated';

/**
 * Characters at their fixed places, each frame in the pose the ffmpeg renderer draws
 * (stages/video/poses.py, character_states): the picture for the expression, eyes and mouth in
 * effect, darkened by `dim` while another persona speaks, raised by the breath's whole pixels.
 * Every picture is mounted once and only the one in effect is shown, so a change of pose never
 * waits for an image to load.
 */
export const Characters: React.FC<{timeline: Timeline}> = ({timeline}) => (
	<>
		{(timeline.characters ?? []).map((track) => (
			<Character key={track.persona_id} track={track} fps={timeline.fps} />
		))}
	</>
);

/** One character's look in a frame: which picture, darkened or not, lifted by how many pixels. */
export type Pose = {image: string; dimmed: boolean; lift: number};

const Character: React.FC<{track: CharacterTrack; fps: number}> = ({track, fps}) => {
	const frame = useCurrentFrame();
	if (!inIntervals(frame, fps, track.visible)) return null;
	const pose = poseAt(track, frame, fps);
	// Whole pixels and Python's rounding, as the ffmpeg renderer places and sizes its sprites.
	const box = {left: pyRound(track.x), top: pyRound(track.y), width: pyRound(track.width), height: pyRound(track.height)};
	return (
		<>
			{pictures(track).map((src) => {
				const shown = src === pose.image;
				return (
					<Img
						key={src}
						src={src}
						style={{
							position: 'absolute',
							...box,
							top: box.top - (shown ? pose.lift : 0),
							// Stretched to the box, as the ffmpeg renderer resizes the sprite.
							objectFit: 'fill',
							// brightness() multiplies the colour channels and keeps alpha, as the
							// ffmpeg renderer multiplies a dimmed sprite's RGB by `dim`.
							filter: shown && pose.dimmed ? `brightness(${track.dim ?? 1})` : undefined,
							visibility: shown ? 'visible' : 'hidden',
						}}
					/>
				);
			})}
		</>
	);
};

/** Every distinct picture the track may show (each mounted once). */
const pictures = (track: CharacterTrack): string[] => {
	const all = track.expressions && Object.keys(track.expressions).length > 0
		? Object.values(track.expressions).flatMap((e) => [...rowOf(e.eyes_open), ...rowOf(e.eyes_closed)])
		: [track.base, track.mouth_open, track.eyes_closed];
	return [...new Set(all.filter((src): src is string => Boolean(src)))];
};

const rowOf = (row: MouthImages): string[] => [row.closed, row.half, row.open];

/** The character's pose in frame `frame`: poses.py's character_states, frame by frame. */
export const poseAt = (track: CharacterTrack, frame: number, fps: number): Pose => ({
	image: imageAt(track, frame, fps),
	dimmed: (track.dim ?? 1) < 1 && inIntervals(frame, fps, track.dimmed),
	lift: liftAt(track, frame, fps),
});

const imageAt = (track: CharacterTrack, frame: number, fps: number): string => {
	const expressions = track.expressions ?? {};
	const names = Object.keys(expressions);
	if (names.length === 0) {
		// An older timeline: base, except the open mouth (which wins) and blinks.
		if (track.mouth_open && inIntervals(frame, fps, track.mouth_open_intervals)) return track.mouth_open;
		if (track.eyes_closed && inIntervals(frame, fps, track.blinks)) return track.eyes_closed;
		return track.base;
	}
	let name = track.default_expression && names.includes(track.default_expression) ? track.default_expression : names[0];
	// Later spans win where spans overlap, as later assignments do in poses.py.
	for (const span of track.expression_spans ?? []) {
		if (names.includes(span.expression) && within(frame, fps, span.start, span.end)) name = span.expression;
	}
	let mouth: keyof MouthImages = 'closed';
	for (const span of track.mouth ?? []) {
		if (within(frame, fps, span.start, span.end)) mouth = span.state;
	}
	const pictures = expressions[name];
	const eyes = inIntervals(frame, fps, track.blinks) ? pictures.eyes_closed : pictures.eyes_open;
	return eyes[mouth];
};

const within = (frame: number, fps: number, start: number, end: number): boolean =>
	toFrame(start, fps) <= frame && frame < toFrame(end, fps);

/** Breath.lift at the frame's time: round(amplitude * (1 - cos(2π (t / period + phase))) / 2) px. */
const liftAt = (track: CharacterTrack, frame: number, fps: number): number => {
	const breath = track.breath;
	if (!breath || breath.amplitude <= 0) return 0;
	const t = frame / fps;
	const lift = pyRound((breath.amplitude * (1 - Math.cos(2 * Math.PI * (t / breath.period + (breath.phase ?? 0))))) / 2);
	return Math.min(63, Math.max(0, lift));
};
