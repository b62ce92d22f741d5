import React from 'react';
import {Composition} from 'remotion';
import type {TimelineProps} from './props';
import {TimelineVideo} from './TimelineVideo';

// Only used when the composition is opened without input props (e.g. in the Studio).
const placeholder: TimelineProps = {
	timeline: {
		fps: 30,
		width: 320,
		height: 180,
		duration: 1,
		frames: 30,
		slides: [],
		narration: [],
		subtitles: [],
		subtitle_style: {
			font_family: 'sans-serif',
			size: 10,
			outline: 1,
			bottom_margin: 10,
			line_height: 12,
			max_lines: 2,
			safe_box: {x: 0, y: 0, width: 320, height: 180},
		},
	},
	videoDurations: {},
	narrationChannels: {},
};

export const Root: React.FC = () => (
	<Composition
		id="Timeline"
		component={TimelineVideo}
		defaultProps={placeholder}
		durationInFrames={placeholder.timeline.frames}
		fps={placeholder.timeline.fps}
		width={placeholder.timeline.width}
		height={placeholder.timeline.height}
		calculateMetadata={({props}) => ({
			durationInFrames: props.timeline.frames,
			fps: props.timeline.fps,
			width: props.timeline.width,
			height: props.timeline.height,
		})}
	/>
);
