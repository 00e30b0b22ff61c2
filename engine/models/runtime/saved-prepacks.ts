import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../../core/log.ts';
import { hashPackedInWorker, packCandidates, recordOf, type PackHash } from '../../onnx/prepack-keys.ts';
import { readPrepacked, writePrepackedRecord } from '../../onnx/prepacked.ts';

/**
 * Creates the session over a build's saved optimised graph (`file`, as expanded), and the first time
 * on the CPU provider (no record yet in `dir`: a build made before first builds recorded one) hashes
 * ORT's keys for its packed MatMul/Gemm weights in a worker meanwhile (prepack-keys.ts) and records
 * them (prepacked.ts says why). Every later load writes the packed form while expanding. Until
 * 2026-12-06 this load had ORT save the whole graph again with its packed buffers to read the keys
 * from (the SDXL UNet's second load took 108.7 s). Recording failing only warns: the loads then pack
 * as before.
 */
export async function createRecordingPrepacks(
  file: string,
  dir: string,
  options: ort.InferenceSession.SessionOptions,
  cpu: boolean,
  log?: Logger,
): Promise<ort.InferenceSession> {
  if (!cpu || readPrepacked(dir) || !existsSync(join(dir, 'optimized.onnx'))) return ort.InferenceSession.create(file, options);
  const t0 = Date.now();
  const hashing = hashKeysMeanwhile(file, log);
  const session = await ort.InferenceSession.create(file, options).catch(async (e: unknown) => {
    await hashing;
    throw e;
  });
  const hashes = await hashing;
  if (!hashes) return session;
  try {
    const tensors = recordOf(file, hashes);
    writePrepackedRecord(dir, tensors);
    log?.info(`recorded ORT's keys for ${Object.keys(tensors).length} packed MatMul/Gemm weights of ${join(dir, 'optimized.onnx')} (${Date.now() - t0} ms, once)`);
  } catch (e) {
    log?.warn(`could not record ORT's packed weights for ${join(dir, 'optimized.onnx')}: ${(e as Error).message.split('\n')[0]}`);
  }
  return session;
}

/**
 * ORT's hashes of the packed weights of `model`, in a worker while the caller creates a session or
 * optimises (prepack-keys.ts); undefined (with a warning) where that fails: a later load then records them.
 */
export async function hashKeysMeanwhile(model: string, log?: Logger): Promise<Map<string, PackHash> | undefined> {
  const t0 = Date.now();
  try {
    const hashes = await hashPackedInWorker(packCandidates(model));
    log?.info(`hashed ${hashes.size} MatMul/Gemm weights for ORT's keys of their packed form in ${Date.now() - t0} ms (beside the session work)`);
    return hashes;
  } catch (e) {
    log?.warn(`could not compute ORT's keys for the packed weights of ${model}: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
}
