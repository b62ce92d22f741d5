import {
	linearTiming,
	TransitionSeries,
	type TransitionPresentation,
	type TransitionPresentationComponentProps,
} from '@remotion/transitions';
import {slide} from '@remotion/transitions/slide';
import {wipe} from '@remotion/transitions/wipe';
import React from 'react';
import {AbsoluteFill, Img, Sequence} from 'remotion';
import {toFrame} from './props';
import type {SlideClip, Timeline, Transition} from './timeline.generated';

/**
 * The slide track as one TransitionSeries.
 *
 * The timeline says a slide's incoming transition runs in [start, start + duration) over the
 * previous slide. A TransitionSeries overlaps neighbouring sequences by the transition's length,
 * so each slide's sequence lasts from its start to the end of the next slide's transition (the
 * last one to its own end): the series then places every slide at exactly its timeline frame.
 */
export const Slides: React.FC<{timeline: Timeline}> = ({timeline}) => {
	const {fps, slides} = timeline;
	if (slides.length === 0) return null;
	const items: React.ReactNode[] = [];
	slides.forEach((clip, i) => {
		const next = slides[i + 1];
		const start = toFrame(clip.start, fps);
		const end = next ? toFrame(next.start, fps) + transitionFrames(next, fps) : toFrame(clip.end, fps);
		const length = Math.max(1, end - start);
		const incoming = i > 0 ? transitionFrames(clip, fps) : 0;
		if (incoming > 0) {
			items.push(
				<TransitionSeries.Transition
					key={`t${i}`}
					presentation={presentationOf(clip.transition_in)}
					timing={linearTiming({durationInFrames: incoming})}
				/>,
			);
		}
		items.push(
			<TransitionSeries.Sequence key={`s${i}`} durationInFrames={length} name={`slide ${clip.section}`}>
				<SlideImage clip={clip} />
			</TransitionSeries.Sequence>,
		);
	});
	return (
		<Sequence from={toFrame(slides[0].start, fps)} name="slides">
			<TransitionSeries>{items}</TransitionSeries>
		</Sequence>
	);
};

const SlideImage: React.FC<{clip: SlideClip}> = ({clip}) => (
	<AbsoluteFill>
		<Img src={clip.image} style={{width: '100%', height: '100%', objectFit: 'contain'}} />
	</AbsoluteFill>
);

/** A transition's length in frames; 0 for a cut (type "none" or no duration). */
const transitionFrames = (clip: SlideClip, fps: number): number => {
	const t = clip.transition_in;
	if (!t || t.type === 'none' || t.type === undefined) return 0;
	return toFrame(t.duration ?? 0, fps);
};

// The ffmpeg renderer's counterparts (stages/video/frames.py, Transition): slideleft, wipeleft (the
// new slide comes in from the right), and a fade that dips through the background.
const presentationOf = (t: Transition | undefined): TransitionPresentation<Record<string, unknown>> => {
	switch (t?.type) {
		case 'slide':
			return slide({direction: 'from-right'}) as TransitionPresentation<Record<string, unknown>>;
		case 'wipe':
			return wipe({direction: 'from-right'}) as TransitionPresentation<Record<string, unknown>>;
		default:
			return {component: DipPresentation, props: {}};
	}
};

/**
 * A fade through the background: the old slide fades out over the first half (the background
 * track shows through), the new one fades in over the second half, so two different texts are
 * never on screen together. Progress p runs 0 -> 1 over the transition: the old slide's opacity
 * is 1 - 2p, the new one's 2p - 1, each clamped to [0, 1].
 */
const DipPresentation: React.FC<TransitionPresentationComponentProps<Record<string, unknown>>> = ({
	children,
	presentationDirection,
	presentationProgress,
}) => {
	const p = presentationProgress;
	const opacity = presentationDirection === 'entering' ? 2 * p - 1 : 1 - 2 * p;
	return <AbsoluteFill style={{opacity: Math.min(1, Math.max(0, opacity))}}>{children}</AbsoluteFill>;
};
