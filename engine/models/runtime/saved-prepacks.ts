import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../../core/log.ts';
import { readPrepacked, recordPrepacked } from '../../onnx/prepacked.ts';
import { saveFolder } from '../../onnx/save-folder.ts';
import { withSessionConfig } from '../../onnx/runtime.ts';

/**
 * Creates the session over a build's saved optimised graph (`file`, as expanded), and the first time
 * on the CPU provider (no record yet in `dir`) has ORT save MLAS's packed MatMul/Gemm weights beside
 * a copy of the graph while it creates it, from which prepacked.ts records ORT's keys (see there for
 * why); the copy is then removed. Every later load writes the packed form while expanding and ORT
 * maps it instead of packing. Recording failing only warns: the loads then pack as before.
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
  const tag = `prepack-save-${process.pid}-${Date.now()}`;
  // ORT writes the whole graph again in float32 with the packed buffers: where the first save goes (save-folder.ts).
  const into = saveFolder(file, dir);
  const saved = join(into, `${tag}.onnx`);
  try {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(
        file,
        withSessionConfig(
          { ...options, optimizedModelFilePath: saved },
          {
            save_external_prepacked_constant_initializers: '1',
            optimized_model_external_initializers_file_name: `${tag}.bin`,
            optimized_model_external_initializers_min_size_in_bytes: '1024',
          },
        ),
      );
    } catch (e) {
      // Saving the copy is what failed (no room, say): the session as it would be without it.
      log?.warn(`could not save ORT's packed weights for ${join(dir, 'optimized.onnx')}: ${(e as Error).message.split('\n')[0]}`);
      return await ort.InferenceSession.create(file, options);
    }
    try {
      const n = recordPrepacked(saved, dir);
      log?.info(`recorded ORT's packing of ${n} MatMul/Gemm weights of ${join(dir, 'optimized.onnx')} (${Date.now() - t0} ms, once)`);
    } catch (e) {
      log?.warn(`could not record ORT's packed weights for ${join(dir, 'optimized.onnx')}: ${(e as Error).message.split('\n')[0]}`);
    }
    return session;
  } finally {
    for (const f of readdirSync(into)) if (f.startsWith(tag)) rmSync(join(into, f), { force: true });
  }
}
