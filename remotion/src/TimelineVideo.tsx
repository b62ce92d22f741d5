import React from 'react';
import {AbsoluteFill, Html5Audio, Img, Loop, OffthreadVideo, Sequence} from 'remotion';
import {Characters} from './Characters';
import {inIntervals, toFrame, type TimelineProps} from './props';
import {Slides} from './Slides';
import {Subtitles} from './Subtitles';
import type {Background, Bgm, NarrationClip, Timeline} from './timeline.generated';

/** The whole video, layered like the ffmpeg renderer: background, slides, characters, subtitles. */
export const TimelineVideo: React.FC<TimelineProps> = ({timeline, videoDurations}) => (
	<AbsoluteFill style={{backgroundColor: '#000000'}}>
		<BackgroundTrack timeline={timeline} videoDurations={videoDurations} />
		<Slides timeline={timeline} />
		<Characters timeline={timeline} />
		<Subtitles timeline={timeline} />
		{timeline.narration.map((clip) => (
			<Narration key={clip.phrase_id} clip={clip} fps={timeline.fps} />
		))}
		{timeline.bgm ? <BgmTrack bgm={timeline.bgm} timeline={timeline} /> : null}
	</AbsoluteFill>
);

const BackgroundTrack: React.FC<TimelineProps> = ({timeline, videoDurations}) => {
	const {fps} = timeline;
	const track = timeline.background;
	return (
		<>
			<BackgroundLayer background={track?.default} videoDurations={videoDurations} fps={fps} />
			{(track?.overrides ?? []).map((item) => {
				const from = toFrame(item.start, fps);
				const to = toFrame(item.end, fps);
				return to > from ? (
					<Sequence key={`${item.section}-${item.start}`} from={from} durationInFrames={to - from}>
						<BackgroundLayer background={item.background} videoDurations={videoDurations} fps={fps} />
					</Sequence>
				) : null;
			})}
		</>
	);
};

const BackgroundLayer: React.FC<{
	background: Background | undefined;
	videoDurations: Record<string, number>;
	fps: number;
}> = ({background, videoDurations, fps}) => {
	if (!background || background.type === 'color' || !background.path) {
		return <AbsoluteFill style={{backgroundColor: background?.value ?? '#000000'}} />;
	}
	const fit = background.fit ?? 'cover';
	if (background.type === 'image') {
		return (
			<AbsoluteFill style={{backgroundColor: '#000000'}}>
				<Img src={background.path} style={{width: '100%', height: '100%', objectFit: fit}} />
			</AbsoluteFill>
		);
	}
	const seconds = videoDurations[background.path];
	const video = (
		<OffthreadVideo muted src={background.path} style={{width: '100%', height: '100%', objectFit: fit}} />
	);
	return (
		<AbsoluteFill style={{backgroundColor: '#000000'}}>
			{seconds ? <Loop durationInFrames={Math.max(1, Math.floor(seconds * fps))}>{video}</Loop> : video}
		</AbsoluteFill>
	);
};

const Narration: React.FC<{clip: NarrationClip; fps: number}> = ({clip, fps}) => (
	<Sequence from={toFrame(clip.start, fps)} layout="none" name={clip.phrase_id}>
		<Html5Audio src={clip.audio} />
	</Sequence>
);

/** BGM: linear fade in and out over the whole video; `duck_volume` times quieter under narration. */
const BgmTrack: React.FC<{bgm: Bgm; timeline: Timeline}> = ({bgm, timeline}) => {
	const {fps, frames} = timeline;
	const spans: Array<[number, number]> = timeline.narration.map((c) => [c.start, c.start + c.duration]);
	const fadeIn = bgm.fade_in * fps;
	const fadeOut = bgm.fade_out * fps;
	const volume = (f: number): number => {
		const rampIn = fadeIn > 0 ? Math.min(1, f / fadeIn) : 1;
		const rampOut = fadeOut > 0 ? Math.min(1, Math.max(0, (frames - f) / fadeOut)) : 1;
		const duck = bgm.duck && inIntervals(f, fps, spans) ? bgm.duck_volume : 1;
		return bgm.volume * rampIn * rampOut * duck;
	};
	return <Html5Audio src={bgm.path} loop={bgm.loop} loopVolumeCurveBehavior="extend" volume={volume} />;
};
