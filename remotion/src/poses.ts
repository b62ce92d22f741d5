import {inIntervals, pyRound, toFrame} from './props';
import type {CharacterTrack, MouthImages} from './timeline.generated';

/**
 * Which picture of a character a frame shows: stages/video/poses.py (character_states), frame by
 * frame, so both renderers draw the same pose. No React here: `print-poses.mjs` runs this file in
 * plain Node for the test that compares it with the Python side on every frame.
 */

/** One character's look in a frame: which picture, darkened or not, lifted by how many pixels. */
export type Pose = {image: string; dimmed: boolean; lift: number};

/** The character's pose in frame `frame`. */
export const poseAt = (track: CharacterTrack, frame: number, fps: number): Pose => ({
	image: imageAt(track, frame, fps),
	dimmed: (track.dim ?? 1) < 1 && inIntervals(frame, fps, track.dimmed),
	lift: liftAt(track, frame, fps),
});

/** Every distinct picture the track may show. */
export const pictures = (track: CharacterTrack): string[] => {
	const all =
		track.expressions && Object.keys(track.expressions).length > 0
			? Object.values(track.expressions).flatMap((e) => [...rowOf(e.eyes_open), ...rowOf(e.eyes_closed)])
			: [track.base, track.mouth_open, track.eyes_closed];
	return [...new Set(all.filter((src): src is string => Boolean(src)))];
};

const rowOf = (row: MouthImages): string[] => [row.closed, row.half, row.open];

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
	const row = expressions[name];
	return (inIntervals(frame, fps, track.blinks) ? row.eyes_closed : row.eyes_open)[mouth];
};

const within = (frame: number, fps: number, start: number, end: number): boolean =>
	toFrame(start, fps) <= frame && frame < toFrame(end, fps);

/** Breath.lift at the frame's time: round(amplitude * (1 - cos(2π (t / period + phase))) / 2) px, 0-63. */
const liftAt = (track: CharacterTrack, frame: number, fps: number): number => {
	const breath = track.breath;
	if (!breath || breath.amplitude <= 0) return 0;
	const t = frame / fps;
	const lift = pyRound((breath.amplitude * (1 - Math.cos(2 * Math.PI * (t / breath.period + (breath.phase ?? 0))))) / 2);
	return Math.min(63, Math.max(0, lift));
};
