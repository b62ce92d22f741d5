import React from 'react';
import {AbsoluteFill, Html5Audio, Img, Loop, OffthreadVideo, Sequence} from 'remotion';
import {Characters} from './Characters';
import {toFrame, type TimelineProps} from './props';
import {Slides} from './Slides';
import {Subtitles} from './Subtitles';
import type {Background, Bgm, NarrationClip, Timeline} from './timeline.generated';

/** The whole video, layered like the ffmpeg renderer: background, slides, characters, subtitles. */
export const TimelineVideo: React.FC<TimelineProps> = ({timeline, videoDurations, narrationChannels}) => (
	<AbsoluteFill style={{backgroundColor: '#000000'}}>
		<BackgroundTrack timeline={timeline} videoDurations={videoDurations} />
		<Slides timeline={timeline} />
		<Characters timeline={timeline} />
		<Subtitles timeline={timeline} />
		{timeline.narration.map((clip) => (
			<Narration key={clip.phrase_id} clip={clip} fps={timeline.fps} channels={narrationChannels[clip.audio] ?? 2} />
		))}
		{timeline.bgm ? <BgmTrack bgm={timeline.bgm} timeline={timeline} /> : null}
	</AbsoluteFill>
);

const BackgroundTrack: React.FC<Omit<TimelineProps, 'narrationChannels'>> = ({timeline, videoDurations}) => {
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

// Remotion upmixes a mono clip to stereo at -3 dB per channel (ffmpeg's -ac 2); the ffmpeg
// renderer puts mono narration on both channels at full level. Gain it back so both agree.
const MONO_GAIN = Math.SQRT2;

const Narration: React.FC<{clip: NarrationClip; fps: number; channels: number}> = ({clip, fps, channels}) => (
	<Sequence from={toFrame(clip.start, fps)} layout="none" name={clip.phrase_id}>
		<Html5Audio src={clip.audio} volume={channels === 1 ? MONO_GAIN : 1} />
	</Sequence>
);

// The ffmpeg renderer's ducking ramp (stages/video/mix.py, DUCK_RAMP_SECONDS): the duck amount
// at t is the share of [t - ramp/2, t + ramp/2] covered by narration, so the music dips smoothly.
const DUCK_RAMP_SECONDS = 0.25;

/** BGM: linear fades over the whole video; `duck_volume` times as loud under narration. */
const BgmTrack: React.FC<{bgm: Bgm; timeline: Timeline}> = ({bgm, timeline}) => {
	const {fps, frames} = timeline;
	const spans = timeline.narration.map((c) => [c.start, c.start + c.duration] as const);
	const duration = frames / fps;
	const volume = (f: number): number => {
		const t = f / fps;
		const rampIn = bgm.fade_in > 0 ? Math.min(1, t / bgm.fade_in) : 1;
		const rampOut = bgm.fade_out > 0 ? Math.min(1, Math.max(0, (duration - t) / bgm.fade_out)) : 1;
		let duck = 1;
		if (bgm.duck) {
			const [lo, hi] = [t - DUCK_RAMP_SECONDS / 2, t + DUCK_RAMP_SECONDS / 2];
			const covered = spans.reduce((sum, [a, b]) => sum + Math.max(0, Math.min(hi, b) - Math.max(lo, a)), 0);
			duck = 1 - (1 - bgm.duck_volume) * Math.min(1, covered / DUCK_RAMP_SECONDS);
		}
		return bgm.volume * rampIn * rampOut * duck;
	};
	return <Html5Audio src={bgm.path} loop={bgm.loop} loopVolumeCurveBehavior="extend" volume={volume} />;
};
