import React, {useEffect, useState} from 'react';
import {AbsoluteFill, continueRender, delayRender, Sequence} from 'remotion';
import {toFrame} from './props';
import type {SubtitleCue, SubtitleStyle, Timeline} from './timeline.generated';

// The family registered for the timeline's font file; distinct from any installed family so a
// missing file can never silently fall back to a look-alike with other metrics.
const FACE = 'moviegen-subtitles';

/**
 * Subtitles as the ffmpeg renderer draws them (ASS, bottom-centre alignment): lines centred in
 * the safe box, the last line's box `bottom_margin` px above the frame's bottom, a black outline
 * of `outline` px around the glyphs. `font_size` is the em size (the ASS side converts it).
 */
export const Subtitles: React.FC<{timeline: Timeline}> = ({timeline}) => {
	const style = timeline.subtitle_style;
	const family = useSubtitleFont(style);
	return (
		<>
			{timeline.subtitles.map((cue) => {
				const from = toFrame(cue.start, timeline.fps);
				const to = toFrame(cue.end, timeline.fps);
				return to > from ? (
					<Sequence key={`${cue.phrase_id}-${cue.start}`} from={from} durationInFrames={to - from} name={cue.phrase_id}>
						<Cue cue={cue} style={style} family={family} />
					</Sequence>
				) : null;
			})}
		</>
	);
};

const Cue: React.FC<{cue: SubtitleCue; style: SubtitleStyle; family: string}> = ({cue, style, family}) => {
	const box = style.safe_box;
	const lines = cue.lines.length > 0 ? cue.lines : cue.text.split('\n');
	return (
		<AbsoluteFill>
			<div
				style={{
					position: 'absolute',
					left: box.x,
					width: box.width,
					bottom: style.bottom_margin,
					display: 'flex',
					flexDirection: 'column',
					alignItems: 'center',
				}}
			>
				{lines.map((line, i) => (
					<div
						key={i}
						style={{
							// libass spaces lines by the font's ascent + descent, which is what
							// CSS calls `normal`; the timeline's line_height is not what it draws.
							lineHeight: 'normal',
							fontFamily: family,
							fontSize: cue.font_size,
							color: cue.color,
							whiteSpace: 'pre',
							// The stroke is centred on the glyph edge and painted under the fill,
							// so twice the width leaves `outline` px outside the glyph, like libass.
							WebkitTextStroke: style.outline > 0 ? `${2 * style.outline}px ${style.outline_color ?? '#000000'}` : undefined,
							paintOrder: 'stroke fill',
							fontKerning: 'normal',
						}}
					>
						{line}
					</div>
				))}
			</div>
		</AbsoluteFill>
	);
};

/** Load the timeline's font file (served over HTTP) before the first frame is captured. */
const useSubtitleFont = (style: SubtitleStyle): string => {
	const fallback = `"${style.font_family}", sans-serif`;
	const [family, setFamily] = useState(style.font_file ? `"${FACE}", ${fallback}` : fallback);
	const [handle] = useState(() => (style.font_file ? delayRender(`font ${style.font_file}`) : null));
	useEffect(() => {
		if (!style.font_file || handle === null) return;
		const face = new FontFace(FACE, `url("${style.font_file}")`);
		face
			.load()
			.then((loaded) => {
				document.fonts.add(loaded);
				continueRender(handle);
			})
			.catch((err: unknown) => {
				// A broken font file should not stop the render: fall back to the family name.
				console.error(`subtitle font ${style.font_file} failed to load: ${String(err)}`);
				setFamily(fallback);
				continueRender(handle);
			});
	}, [style.font_file, handle, fallback]);
	return family;
};
