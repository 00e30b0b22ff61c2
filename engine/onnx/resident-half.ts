import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { HALF_SUFFIX } from './exact-half.ts';

const { onnx } = onnxProto;

/**
 * Holding weights in 16 bits on ORT's CPU provider (`WEFT_WEIGHTS=half`). The CPU provider has no
 * float16 Conv or GEMM on x86, so a weight stays a float16 initializer behind the `Cast` the cache
 * already stores it with, and ORT runs that Cast at each call, just before the weight's consumer (its
 * default order is a depth-first walk back from the outputs): the float32 copy lives in the arena only
 * while that node runs. The saved optimised graph is loaded with optimisation off, so nothing folds
 * the Casts back into float32 constants. The Cast is exact, so the values are the same bits.
 *
 * Not every weight can stay so: kernels that pre-pack a constant input (MatMul, Gemm and their fused
 * forms: MLAS copies B into its own panel layout at load) see a computed value instead and then run
 * MLAS's unpacked path, whose K blocking differs, so their sums round differently (measured on the
 * tiny SDXL: 499 of 512 UNet outputs differ). Those weights are widened to float32 at load as before;
 * the rest (convolutions, embeddings, biases) stay 16-bit.
 */

export type WeightsMode = 'float32' | 'half';

/** `(domain:op/input)` of the CPU kernels that pre-pack a constant float input (onnxruntime 1.30's PrePack overrides). */
const PREPACKED = new Set([
  ':MatMul/1',
  ':Gemm/1',
  'com.microsoft:FusedMatMul/1',
  'com.microsoft:FusedGemm/1',
  ':ConvTranspose/1',
  'com.microsoft:Attention/1',
]);

/** The weights mode asked for by `$WEFT_WEIGHTS` (default float32); anything else is refused by name. */
export function weightsModeFromEnv(env: NodeJS.ProcessEnv = process.env): WeightsMode {
  const v = env.WEFT_WEIGHTS;
  if (v === undefined || v === '' || v === 'float32') return 'float32';
  if (v === 'half') return 'half';
  throw new Error(`WEFT_WEIGHTS=${v}: expected float32 or half`);
}

/** Values a pre-packing kernel reads as its constant input: these must be float32 initializers (see above). */
export function prepackedValues(model: onnxProto.onnx.IModelProto): Set<string> {
  const out = new Set<string>();
  for (const n of model.graph?.node ?? []) {
    (n.input ?? []).forEach((v, i) => {
      if (PREPACKED.has(`${n.domain ?? ''}:${n.opType ?? ''}/${i}`)) out.add(v);
    });
  }
  return out;
}

/** A saved graph prepared for a session that keeps 16-bit weights resident; remove it once the session exists. */
export interface ResidentModel {
  /** The model file to expand (beside the original, so its external data resolves). */
  readonly file: string;
  /** 16-bit weights left behind their Casts. */
  readonly kept: number;
  dispose(): void;
}

/** Appended to a 16-bit weight's name so expand-half, which widens every Cast of a `#f16` initializer, copies it as it is. */
const RESIDENT_SUFFIX = ':resident';

/**
 * A copy of the graph `file` (written beside it, graph only: the weights stay where they are) in which
 * each 16-bit weight no pre-packing kernel reads is renamed out of expand-half's reach, so expanding
 * the copy widens only the pre-packed ones and keeps the rest 16-bit behind their Casts. With `packing`
 * false (a session with ORT's pre-packing off, `WEFT_PREPACK=0`) no kernel packs, and every 16-bit
 * weight stays. Undefined when there is none to keep (expand `file` itself).
 */
export function markResidentHalf(file: string, opts: { packing?: boolean } = {}): ResidentModel | undefined {
  const model = onnx.ModelProto.decode(readFileSync(file));
  const graph = model.graph;
  if (!graph) return undefined;
  const packed = opts.packing === false ? new Set<string>() : prepackedValues(model);
  const rename = new Map<string, string>();
  for (const n of graph.node ?? []) {
    const input = n.input?.[0];
    const output = n.output?.[0];
    if (n.opType === 'Cast' && input?.endsWith(HALF_SUFFIX) && output && !packed.has(output))
      rename.set(input, `${input}${RESIDENT_SUFFIX}`);
  }
  let kept = 0;
  for (const t of graph.initializer ?? []) {
    const to = rename.get(t.name ?? '');
    if (to === undefined) continue;
    t.name = to;
    kept++;
  }
  if (kept === 0) return undefined;
  for (const n of graph.node ?? []) if (n.opType === 'Cast' && n.input?.[0] && rename.has(n.input[0])) n.input[0] = rename.get(n.input[0])!;
  const out = join(dirname(file), `resident-${process.pid}-${Date.now()}-${++serial}.onnx`);
  writeFileSync(out, onnx.ModelProto.encode(model).finish());
  return { file: out, kept, dispose: () => rmSync(out, { force: true }) };
}

let serial = 0;
