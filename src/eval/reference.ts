// The real images a classifier scores against: its own dataset, loaded the way it was trained (the load
// options are stored in its checkpoint), and the classifier's features of a whole split, cached beside the
// classifier as <classifier>.features-<split>.safetensors. A cache is used only when it was made by the
// same weights (classifier hash) from the same pixels (the split's sha256); otherwise it is recomputed.
import { existsSync } from 'node:fs';
import { loadDataset, type Dataset, type LoadOptions, type Split } from '../data/dataset.js';
import { CtfError } from '../errors.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { dataIdentity, type DataIdentity } from '../tokenizer/data-identity.js';
import type { LoadedClassifier } from './classifier.js';
import { datasetFeatures, type FeatureOptions, type ImageFeatures } from './features.js';

/** How the training data was loaded: the spec and load options (stored as metadata "data_load"). */
export interface DataLoad extends LoadOptions { spec: string }

export const FEATURES_KIND = 'ctfgen.classifier-features';

function json<T>(c: LoadedClassifier, key: string): T {
  const raw = c.metadata[key];
  if (raw === undefined)
    throw new CtfError(
      `classifier ${c.path}: metadata "${key}" is missing — was it written by \`ctfgen eval classifier train\`?`,
    );
  try {
    return JSON.parse(raw) as T;
  } catch {
    throw new CtfError(`classifier ${c.path}: metadata "${key}" is not valid JSON`);
  }
}

/** The dataset the classifier was trained on: its identity and how to load it again. */
export function classifierData(c: LoadedClassifier): { load: DataLoad; identity: DataIdentity } {
  return { load: json<DataLoad>(c, 'data_load'), identity: json<DataIdentity>(c, 'data') };
}

/** A split of the classifier's dataset with the preprocessing it was trained with. */
export async function loadClassifierSplit(c: LoadedClassifier, split: Split): Promise<Dataset> {
  const { load } = classifierData(c);
  const { spec, ...options } = load;
  return loadDataset(spec, split, options);
}

/** <dir>/classifier.safetensors → <dir>/classifier.features-test.safetensors */
export function featureCachePath(classifierPath: string, split: Split): string {
  return classifierPath.replace(/(\.safetensors)?$/, `.features-${split}.safetensors`);
}

export interface ReferenceFeatures {
  split: Split;
  data: DataIdentity;
  features: ImageFeatures;  // every image of the split, in dataset order
  labels: Int32Array;       // (n)
  cache: string;            // the cache file
  cached: boolean;          // true when read from the cache, false when computed now
}

/** The classifier's features of a whole split of its dataset, from the cache when it is valid. */
export async function referenceFeatures(
  c: LoadedClassifier,
  split: Split,
  o: FeatureOptions & { dataset?: Dataset } = {},
): Promise<ReferenceFeatures> {
  const ds = o.dataset ?? (await loadClassifierSplit(c, split));
  const data = dataIdentity(ds),
    cache = featureCachePath(c.path, split);
  const { featureDim: dim, numClasses: classes } = c.model.config;
  if (existsSync(cache)) {
    const file = await loadSafetensors(cache);
    const m = file.metadata,
      f = file.tensors.get('features'),
      p = file.tensors.get('probs');
    if (
      m['kind'] === FEATURES_KIND &&
      m['classifier_hash'] === c.hash &&
      m['data_sha256'] === data.sha256 &&
      f?.dtype === 'F32' &&
      p?.dtype === 'F32' &&
      f.shape.join() === `${ds.count},${dim}` &&
      p.shape.join() === `${ds.count},${classes}`
    )
      return {
        split,
        data,
        labels: ds.labels,
        cache,
        cached: true,
        features: { n: ds.count, dim, classes, features: f.data as Float32Array, probs: p.data as Float32Array },
      };
  }
  const features = datasetFeatures(c.model, ds, o);
  await saveSafetensors(
    cache,
    {
      features: { dtype: 'F32', shape: [ds.count, dim], data: features.features },
      probs: { dtype: 'F32', shape: [ds.count, classes], data: features.probs },
      labels: { dtype: 'I32', shape: [ds.count], data: ds.labels },
    },
    { kind: FEATURES_KIND, classifier_hash: c.hash, data_sha256: data.sha256, data: JSON.stringify(data) },
  );
  return { split, data, labels: ds.labels, cache, cached: false, features };
}
