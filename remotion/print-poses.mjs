// Print every character's pose in every frame of a timeline, as src/poses.ts computes it:
//
//   node print-poses.mjs timeline.json     -> {"<persona_id>": [[image, dimmed, lift], ...], ...}
//
// For the test that holds it to stages/video/poses.py frame by frame (tests/test_remotion_characters.py)
// without a browser: the two modules are transpiled with the project's TypeScript into a temporary
// folder and imported from there.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';
import ts from 'typescript';

const here = path.dirname(fileURLToPath(import.meta.url));

const load = async () => {
	const out = fs.mkdtempSync(path.join(os.tmpdir(), 'moviegen-poses-'));
	try {
		for (const name of ['props', 'poses']) {
			const source = fs.readFileSync(path.join(here, 'src', `${name}.ts`), 'utf8');
			const {outputText} = ts.transpileModule(source, {
				compilerOptions: {module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false},
			});
			fs.writeFileSync(path.join(out, `${name}.mjs`), outputText.replace(/from '\.\/(\w+)'/g, "from './$1.mjs'"));
		}
		return await import(pathToFileURL(path.join(out, 'poses.mjs')).href);
	} finally {
		fs.rmSync(out, {recursive: true, force: true});
	}
};

const timeline = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const {poseAt} = await load();
const result = {};
for (const track of timeline.characters ?? []) {
	result[track.persona_id] = Array.from({length: timeline.frames}, (_, f) => {
		const pose = poseAt(track, f, timeline.fps);
		return [pose.image, pose.dimmed, pose.lift];
	});
}
process.stdout.write(`${JSON.stringify(result)}\n`);
