import { join } from 'node:path';
import { openWeights } from '../../formats/open-weights.ts';
import { FileMemo } from '../runtime/file-memo.ts';
import { readHypernetwork, type Hypernetwork } from './read.ts';

export { hypernetworkEntries } from './entries.ts';
export { ACTIVATIONS, HypernetworkFileError, readHypernetwork, type HnLayer, type Hypernetwork, type HypernetActivation } from './read.ts';

const memo = new FileMemo<{ hn: Hypernetwork; hash: string }>();

/** A hypernetwork file read once per file identity, with its content hash (memoised under `cacheDir/hashes`). */
export function loadHypernetwork(file: string, cacheDir: string): { hn: Hypernetwork; hash: string } {
  return memo.get(file, () => {
    const wf = openWeights(file);
    return { hash: wf.contentHash({ cacheDir: join(cacheDir, 'hashes') }), hn: readHypernetwork(file, wf) };
  });
}
