import { cpSync, existsSync } from 'node:fs';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';

/** A copy of a checkpoint with every tensor in float16 (as released checkpoints store them) beside it, with its tokenizer folder. */
export function halfCopy(file: string): string {
  const sf = SafetensorsFile.open(file);
  const out = file.replace(/\.safetensors$/, '-f16.safetensors');
  writeSafetensors(out, sf.names().map((name) => ({ name, dtype: 'F16' as const, shape: sf.shape(name), data: () => sf.get(name) })));
  const tok = file.replace(/\.safetensors$/, '.tokenizer');
  if (existsSync(tok)) cpSync(tok, out.replace(/\.safetensors$/, '.tokenizer'), { recursive: true });
  return out;
}

/** Whether two arrays hold the same bits. */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
