import React from 'react';
import {Img, useCurrentFrame} from 'remotion';
import {inIntervals} from './props';
import type {CharacterTrack, Timeline} from './timeline.generated';

/**
 * Characters at their fixed places. Every variant image is mounted once and only the one in
 * effect is shown, so switching mouth or eyes never waits for an image to load.
 */
export const Characters: React.FC<{timeline: Timeline}> = ({timeline}) => (
	<>
		{(timeline.characters ?? []).map((track) => (
			<Character key={track.persona_id} track={track} fps={timeline.fps} />
		))}
	</>
);

type Variant = 'base' | 'mouth_open' | 'eyes_closed';

const Character: React.FC<{track: CharacterTrack; fps: number}> = ({track, fps}) => {
	const frame = useCurrentFrame();
	if (!inIntervals(frame, fps, track.visible)) return null;
	const shown = variantAt(track, frame, fps);
	const variants: Array<[Variant, string | null | undefined]> = [
		['base', track.base],
		['mouth_open', track.mouth_open],
		['eyes_closed', track.eyes_closed],
	];
	return (
		<>
			{variants.map(([name, src]) =>
				src ? (
					<Img
						key={name}
						src={src}
						style={{
							position: 'absolute',
							left: track.x,
							top: track.y,
							width: track.width,
							height: track.height,
							// Stretched to the box, as the ffmpeg renderer resizes the sprite.
							objectFit: 'fill',
							visibility: name === shown ? 'visible' : 'hidden',
						}}
					/>
				) : null,
			)}
		</>
	);
};

/** Which image is drawn: mouth open wins over a blink (timeline.py, CharacterTrack). */
const variantAt = (track: CharacterTrack, frame: number, fps: number): Variant => {
	if (track.mouth_open && inIntervals(frame, fps, track.mouth_open_intervals)) return 'mouth_open';
	if (track.eyes_closed && inIntervals(frame, fps, track.blinks)) return 'eyes_closed';
	return 'base';
};
