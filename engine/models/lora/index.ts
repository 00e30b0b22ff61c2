export { adapterKeyMap } from './keys.ts';
export { AdapterArchitectureError, parseAdapter, type ParsedAdapter } from './parse.ts';
export { type AdapterTensor, type PatchKind, type WeightPatch } from './types.ts';
export { jsMatMul, patchedWeight, type MatMul } from './apply.ts';
export { ortMatMul } from './ort-matmul.ts';
