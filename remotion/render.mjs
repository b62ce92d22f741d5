// Render a moviegen timeline.json with Remotion, printing one JSON line per event on stdout.
//
//   node render.mjs --timeline T.json --out OUT.mp4 [--concurrency 1] [--browser /usr/bin/chromium]
//                   [--crf 23] [--preset veryfast] [--bundle-cache DIR]
//
// stdout lines (nothing else is printed there; Remotion's own logs go to stderr):
//   {"type":"status","message":"bundling"}                          before frames exist
//   {"type":"progress","renderedFrames":n,"encodedFrames":n,"totalFrames":n,"stage":"encoding"}
//   {"type":"done","output":"/abs/OUT.mp4","totalFrames":n}
//   {"type":"error","message":"...","kind":"input"|"render"}       then exit 2 (input) or 1
//
// Nothing here reaches the network: the browser is the given executable (Remotion never
// downloads one when browserExecutable is set; onBrowserDownload throws to make sure), no
// licence key is passed (with one, Remotion reports a usage event over HTTP), and assets come
// from a loopback server in this process.
import {bundle} from '@remotion/bundler';
import {openBrowser, renderMedia, selectComposition} from '@remotion/renderer';
import {spawnSync} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const COMPOSITION = 'Timeline';

class InputError extends Error {}

const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const parseArgs = (argv) => {
	const args = {
		concurrency: 1,
		browser: '/usr/bin/chromium',
		crf: 23,
		preset: 'veryfast',
		bundleCache: path.join(here, '.bundle-cache'),
	};
	const names = {
		'--timeline': 'timeline',
		'--out': 'out',
		'--concurrency': 'concurrency',
		'--browser': 'browser',
		'--crf': 'crf',
		'--preset': 'preset',
		'--bundle-cache': 'bundleCache',
	};
	for (let i = 2; i < argv.length; i += 2) {
		const key = names[argv[i]];
		if (!key || argv[i + 1] === undefined) throw new InputError(`unknown or incomplete argument: ${argv[i]}`);
		args[key] = argv[i + 1];
	}
	if (!args.timeline || !args.out) throw new InputError('--timeline and --out are required');
	for (const key of ['concurrency', 'crf']) {
		args[key] = Number(args[key]);
		if (!Number.isInteger(args[key])) throw new InputError(`--${key} must be an integer`);
	}
	return args;
};

// --- assets ---------------------------------------------------------------------------------
//
// Why a loopback server rather than the bundle's public dir: Remotion copies publicDir into the
// bundle, so serving assets that way means copying every clip and slide per render (and a
// per-job bundle). Instead, this process serves exactly the files the timeline names, each
// under an opaque /a/<n>/<name> URL: there is no path in the URL to traverse, so nothing else
// on the machine is reachable, and nothing is copied (Remotion's compositor does download
// audio and video into its own temp folder, as it does for any remote URL).

const ASSET_KEYS = new Set(['image', 'audio', 'font_file', 'base', 'mouth_open', 'eyes_closed', 'path']);
// A character expression's pictures: {eyes_open|eyes_closed: {closed, half, open}: path}.
const PICTURE_ROWS = new Set(['eyes_open', 'eyes_closed']);

/** Replace every asset path in the timeline by a URL; return the URL -> file table. */
const rewriteAssets = (timeline, origin) => {
	const files = [];
	const byPath = new Map();
	const urlFor = (file) => {
		if (!path.isAbsolute(file)) throw new InputError(`asset path is not absolute: ${file}`);
		if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new InputError(`asset not found: ${file}`);
		if (!byPath.has(file)) {
			const n = files.length;
			files.push(file);
			byPath.set(file, `${origin}/a/${n}/${encodeURIComponent(path.basename(file))}`);
		}
		return byPath.get(file);
	};
	const walk = (node) => {
		if (Array.isArray(node)) return node.map(walk);
		if (node === null || typeof node !== 'object') return node;
		const out = {};
		for (const [key, value] of Object.entries(node)) {
			if (ASSET_KEYS.has(key) && typeof value === 'string') out[key] = urlFor(value);
			else if (PICTURE_ROWS.has(key) && value !== null && typeof value === 'object' && !Array.isArray(value)) {
				out[key] = Object.fromEntries(Object.entries(value).map(([state, file]) => [state, urlFor(file)]));
			} else out[key] = walk(value);
		}
		return out;
	};
	return {timeline: walk(timeline), files};
};

const MIME = {
	'.png': 'image/png',
	'.jpg': 'image/jpeg',
	'.jpeg': 'image/jpeg',
	'.webp': 'image/webp',
	'.gif': 'image/gif',
	'.svg': 'image/svg+xml',
	'.wav': 'audio/wav',
	'.mp3': 'audio/mpeg',
	'.m4a': 'audio/mp4',
	'.aac': 'audio/aac',
	'.ogg': 'audio/ogg',
	'.opus': 'audio/ogg',
	'.flac': 'audio/flac',
	'.mp4': 'video/mp4',
	'.webm': 'video/webm',
	'.mov': 'video/quicktime',
	'.ttf': 'font/ttf',
	'.otf': 'font/otf',
	'.ttc': 'font/collection',
	'.woff': 'font/woff',
	'.woff2': 'font/woff2',
};

/** Serve the listed files on 127.0.0.1 (GET/HEAD, byte ranges, CORS for fonts). */
const startAssetServer = () =>
	new Promise((resolve, reject) => {
		const table = {files: []};
		const server = http.createServer((req, res) => {
			const match = /^\/a\/(\d+)\/([^/?]+)$/.exec((req.url ?? '').split('?')[0]);
			const file = match ? table.files[Number(match[1])] : undefined;
			if (req.method !== 'GET' && req.method !== 'HEAD') {
				res.writeHead(405).end();
				return;
			}
			if (!file || decodeURIComponent(match[2]) !== path.basename(file)) {
				res.writeHead(404).end();
				return;
			}
			serveFile(req, res, file);
		});
		server.on('error', reject);
		server.listen(0, '127.0.0.1', () => {
			const {port} = server.address();
			resolve({server, table, origin: `http://127.0.0.1:${port}`});
		});
	});

const serveFile = (req, res, file) => {
	let size;
	try {
		size = fs.statSync(file).size;
	} catch {
		res.writeHead(404).end();
		return;
	}
	const headers = {
		'Content-Type': MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
		'Accept-Ranges': 'bytes',
		'Access-Control-Allow-Origin': '*',
		'Cache-Control': 'no-cache',
	};
	let start = 0;
	let end = size - 1;
	let status = 200;
	const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
	if (range && (range[1] || range[2])) {
		if (range[1]) {
			start = Number(range[1]);
			end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
		} else {
			start = Math.max(0, size - Number(range[2]));
		}
		if (start > end || start >= size) {
			res.writeHead(416, {'Content-Range': `bytes */${size}`}).end();
			return;
		}
		status = 206;
		headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
	}
	headers['Content-Length'] = String(size === 0 ? 0 : end - start + 1);
	res.writeHead(status, headers);
	if (req.method === 'HEAD' || size === 0) {
		res.end();
		return;
	}
	fs.createReadStream(file, {start, end}).on('error', () => res.destroy()).pipe(res);
};

// --- media facts ----------------------------------------------------------------------------

/** Durations (s) of background videos, for looping. */
const probeVideoDurations = (timeline, urlOf) => {
	const backgrounds = [timeline.background?.default, ...(timeline.background?.overrides ?? []).map((o) => o.background)];
	const out = {};
	for (const bg of backgrounds) {
		if (!bg || bg.type !== 'video' || !bg.path) continue;
		const seconds = Number.parseFloat(runFfprobe(['-v', 'error', '-show_entries', 'format=duration', '-of', 'default=nw=1:nk=1', bg.path]));
		if (!(seconds > 0)) throw new InputError(`cannot read the duration of background video ${bg.path}`);
		out[urlOf(bg.path)] = seconds;
	}
	return out;
};

/** Channel counts of the narration clips (WAV headers; ffprobe for anything else). */
const narrationChannels = (timeline, urlOf) => {
	const out = {};
	for (const clip of timeline.narration ?? []) {
		const url = urlOf(clip.audio);
		if (!(url in out)) out[url] = wavChannels(clip.audio) ?? probeChannels(clip.audio);
	}
	return out;
};

const wavChannels = (file) => {
	const fd = fs.openSync(file, 'r');
	try {
		const head = Buffer.alloc(4096);
		const size = fs.readSync(fd, head, 0, head.length, 0);
		if (size < 12 || head.toString('ascii', 0, 4) !== 'RIFF' || head.toString('ascii', 8, 12) !== 'WAVE') return null;
		for (let at = 12; at + 8 <= size; ) {
			const id = head.toString('ascii', at, at + 4);
			const length = head.readUInt32LE(at + 4);
			if (id === 'fmt ' && at + 12 <= size) return head.readUInt16LE(at + 10);
			at += 8 + length + (length % 2);
		}
		return null;
	} finally {
		fs.closeSync(fd);
	}
};

const probeChannels = (file) => {
	const probe = runFfprobe(['-v', 'error', '-select_streams', 'a:0', '-show_entries', 'stream=channels', '-of', 'default=nw=1:nk=1', file]);
	const channels = Number.parseInt(probe, 10);
	if (!(channels > 0)) throw new InputError(`cannot read the audio of ${file}`);
	return channels;
};

/** Remotion's bundled ffprobe (the compositor package ships it with its libraries). */
const runFfprobe = (args) => {
	const compositor = path.join(here, 'node_modules', '@remotion', 'compositor-linux-x64-gnu');
	return spawnSync(path.join(compositor, 'ffprobe'), args, {
		cwd: compositor,
		env: {...process.env, LD_LIBRARY_PATH: compositor},
		encoding: 'utf8',
	}).stdout;
};

// --- bundle cache ---------------------------------------------------------------------------

/** The hash of everything the bundle is built from: sources, lockfile, configs. */
const sourceHash = () => {
	const hash = crypto.createHash('sha256');
	const files = ['package-lock.json', 'tsconfig.json'];
	const walk = (dir) => {
		for (const entry of fs.readdirSync(path.join(here, dir), {withFileTypes: true})) {
			const rel = path.join(dir, entry.name);
			if (entry.isDirectory()) walk(rel);
			else files.push(rel);
		}
	};
	walk('src');
	for (const rel of files.sort()) {
		hash.update(rel).update('\0').update(fs.readFileSync(path.join(here, rel))).update('\0');
	}
	return hash.digest('hex').slice(0, 16);
};

/** The bundle for the current sources: reused when present, else built and renamed into place. */
const cachedBundle = async (cacheDir) => {
	const key = sourceHash();
	const final = path.join(cacheDir, key);
	if (fs.existsSync(path.join(final, 'index.html'))) return {serveUrl: final, cached: true};
	fs.mkdirSync(cacheDir, {recursive: true});
	const temp = fs.mkdtempSync(path.join(cacheDir, `.${key}-`));
	let last = -1;
	await bundle({
		entryPoint: path.join(here, 'src', 'index.ts'),
		outDir: temp,
		enableCaching: false,
		onProgress: (percent) => {
			if (percent !== last) emit({type: 'status', message: `bundling ${percent}%`});
			last = percent;
		},
	});
	try {
		fs.renameSync(temp, final);
	} catch (err) {
		// Another render finished the same bundle first: theirs is identical, use it.
		fs.rmSync(temp, {recursive: true, force: true});
		if (!fs.existsSync(path.join(final, 'index.html'))) throw err;
	}
	pruneBundles(cacheDir, key);
	return {serveUrl: final, cached: false};
};

/** Remove bundles of older sources (kept an hour, in case a render still reads one). */
const pruneBundles = (cacheDir, keep) => {
	const cutoff = Date.now() - 3600 * 1000;
	for (const name of fs.readdirSync(cacheDir)) {
		const full = path.join(cacheDir, name);
		try {
			if (name !== keep && fs.statSync(full).mtimeMs < cutoff) fs.rmSync(full, {recursive: true, force: true});
		} catch {
			// Raced with another pruner: nothing to do.
		}
	}
};

// --- render ---------------------------------------------------------------------------------

const noDownload = () => {
	throw new Error('refusing to download a browser: pass --browser with a local Chromium');
};

// Remotion already launches Chromium with --disable-background-networking,
// --disable-component-update, --disable-sync, --no-first-run, --no-pings, --no-sandbox and no
// proxy; its ChromiumOptions take no extra flags. `gl` stays unset: swangle ran half as fast.
const chromiumOptions = {};

// Remotion encodes the soundtrack to ADTS AAC (which cannot say "skip the encoder delay") and
// copies it into the MP4, so the audio would play 2048 samples (43 ms at 48 kHz, 1.3 frames) late.
// Shifting the copied stream back makes the MP4 muxer write an edit list: players then start the
// audio exactly at 0, as in the ffmpeg renderer's output.
const SAMPLE_RATE = 48000;
const AUDIO_DELAY_SECONDS = 2048 / SAMPLE_RATE;

const alignAudio = ({type, args}) => {
	if (type !== 'stitcher') return args;
	const at = args.findIndex((arg, i) => arg === '-i' && args[i + 2] === '-c:a' && args[i + 3] === 'copy');
	if (at < 0) throw new Error(`Remotion's stitcher arguments changed; update alignAudio: ${args.join(' ')}`);
	return [...args.slice(0, at), '-itsoffset', `-${AUDIO_DELAY_SECONDS.toFixed(6)}`, ...args.slice(at)];
};

const main = async () => {
	const args = parseArgs(process.argv);
	const browserExecutable = path.resolve(args.browser);
	if (!fs.existsSync(browserExecutable)) throw new InputError(`browser not found: ${browserExecutable}`);
	let raw;
	try {
		raw = JSON.parse(fs.readFileSync(args.timeline, 'utf8'));
	} catch (err) {
		throw new InputError(`cannot read timeline ${args.timeline}: ${err.message}`);
	}
	const {server, table, origin} = await startAssetServer();
	let browser = null;
	try {
		const {timeline, files} = rewriteAssets(raw, origin);
		table.files = files;
		const urlOf = (file) => `${origin}/a/${files.indexOf(file)}/${encodeURIComponent(path.basename(file))}`;
		const inputProps = {
			timeline,
			videoDurations: probeVideoDurations(raw, urlOf),
			narrationChannels: narrationChannels(raw, urlOf),
		};

		emit({type: 'status', message: 'bundling'});
		const {serveUrl} = await cachedBundle(path.resolve(args.bundleCache));
		emit({type: 'status', message: 'opening browser'});
		browser = await openBrowser('chrome', {
			browserExecutable,
			chromiumOptions,
			chromeMode: 'headless-shell',
			logLevel: 'error',
			onBrowserDownload: noDownload,
		});
		const common = {
			serveUrl,
			inputProps,
			puppeteerInstance: browser,
			browserExecutable,
			chromiumOptions,
			onBrowserDownload: noDownload,
			logLevel: 'error',
			timeoutInMilliseconds: 120000,
			// The page's console (a font that failed to load, say) goes to stderr, where the
			// Python side keeps the tail for its error message.
			onBrowserLog: ({type, text}) => process.stderr.write(`browser ${type}: ${text}\n`),
		};
		const composition = await selectComposition({...common, id: COMPOSITION});
		const totalFrames = composition.durationInFrames;
		emit({type: 'progress', renderedFrames: 0, encodedFrames: 0, totalFrames, stage: 'rendering'});
		const out = path.resolve(args.out);
		let previous = '';
		await renderMedia({
			...common,
			composition,
			outputLocation: out,
			overwrite: true,
			codec: 'h264',
			audioCodec: 'aac',
			pixelFormat: 'yuv420p',
			// Limited-range BT.709, tagged, as players expect of HD video (Remotion's default is
			// full-range JPEG colours, yuvj420p, which some players show washed out or crushed).
			colorSpace: 'bt709',
			crf: args.crf,
			x264Preset: args.preset,
			enforceAudioTrack: true,
			ffmpegOverride: alignAudio,
			sampleRate: SAMPLE_RATE,
			concurrency: args.concurrency,
			onProgress: ({renderedFrames, encodedFrames, stitchStage}) => {
				const line = {type: 'progress', renderedFrames, encodedFrames, totalFrames, stage: stitchStage};
				const text = JSON.stringify(line);
				if (text !== previous) emit(line);
				previous = text;
			},
		});
		emit({type: 'done', output: out, totalFrames});
	} finally {
		if (browser) await browser.close({silent: true}).catch(() => undefined);
		server.close();
	}
};

main().then(
	() => process.exit(0),
	(err) => {
		emit({type: 'error', kind: err instanceof InputError ? 'input' : 'render', message: String(err?.message ?? err)});
		process.stderr.write(`${err?.stack ?? err}\n`);
		process.exit(err instanceof InputError ? 2 : 1);
	},
);
