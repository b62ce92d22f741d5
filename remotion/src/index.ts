// The bundle's entry point: render.mjs bundles this file once per source hash.
import {registerRoot} from 'remotion';
import {Root} from './Root';

registerRoot(Root);
