import React from 'react';
import {Img, useCurrentFrame} from 'remotion';
import {poseAt, pictures} from './poses';
import {inIntervals, pyRound} from './props';
import type {CharacterTrack, Timeline} from './timeline.generated';

/**
 * Characters at their fixed places, each frame in the pose the ffmpeg renderer draws (poses.ts):
 * the picture for the expression, eyes and mouth in effect, darkened by `dim` while another
 * persona speaks, raised by the breath's whole pixels. Every picture is mounted once and only the
 * one in effect is shown, so a change of pose never waits for an image to load.
 */
export const Characters: React.FC<{timeline: Timeline}> = ({timeline}) => (
	<>
		{(timeline.characters ?? []).map((track) => (
			<Character key={track.persona_id} track={track} fps={timeline.fps} />
		))}
	</>
);

const Character: React.FC<{track: CharacterTrack; fps: number}> = ({track, fps}) => {
	const frame = useCurrentFrame();
	if (!inIntervals(frame, fps, track.visible)) return null;
	const pose = poseAt(track, frame, fps);
	// Whole pixels and Python's rounding, as the ffmpeg renderer places its sprites; the pictures
	// arrive resized to this box (stages/video/remotion.py), so they are drawn 1:1.
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
