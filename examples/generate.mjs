// Sample images from a ctfgen run directory with the library API and write them as a PNG grid.
//
//   node examples/generate.mjs RUN_DIR OUT.png [method]     (method: ctf (default) or baseline)
//
// RUN_DIR holds what `ctfgen demo` or the `ctfgen train …` commands write (tokenizer.safetensors, clusters.safetensors,
// stage1.safetensors, aux.safetensors, baseline.safetensors).
import { loadSampler, quantizeImages, resolveSamplerPaths, sampleImages, writeImageGrid } from 'ctfgen';

const [run, out, method = 'ctf'] = process.argv.slice(2);
if (!run || !out) {
  console.error('usage: node examples/generate.mjs RUN_DIR OUT.png [ctf|baseline]');
  process.exit(2);
}
const { paths } = resolveSamplerPaths([method], run, {});
const pieces = await loadSampler([method], paths);  // checks that the pieces belong together
const perClass = 4;
const classes = Int32Array.from({ length: pieces.numClasses * perClass }, (_, i) => Math.floor(i / perClass));
const result = sampleImages(pieces, { method, classes, seed: 0, cfgScale: 2, temperature: 1 });
await writeImageGrid(out, quantizeImages(result.images), result.shape, { cols: perClass, scale: 2 });
console.log(`${method}: ${classes.length} images in ${result.seconds.total.toFixed(2)} s → ${out}`);
