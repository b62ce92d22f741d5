import type {Timeline} from './timeline.generated';

/**
 * What render.mjs passes as input props: the timeline with every asset path rewritten to a URL
 * on its loopback asset server, plus facts about media the timeline does not carry.
 */
export type TimelineProps = {
	timeline: Timeline;
	/** Background video URL -> its duration in seconds (for looping). */
	videoDurations: Record<string, number>;
	/** Narration clip URL -> its channel count. */
	narrationChannels: Record<string, number>;
};

/** Python's round(): halves go to the even neighbour (Math.round sends them up). */
export const pyRound = (x: number): number => {
	const r = Math.round(x);
	return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** frames == round(t * fps): the rounding both renderers use (stages/video/timeline.py). */
export const toFrame = (t: number, fps: number): number => pyRound(t * fps);

/** Whether frame `f` lies in one of the `[start, end)` intervals (seconds). */
export const inIntervals = (f: number, fps: number, intervals: ReadonlyArray<[number, number]> | undefined): boolean =>
	(intervals ?? []).some(([a, b]) => toFrame(a, fps) <= f && f < toFrame(b, fps));
