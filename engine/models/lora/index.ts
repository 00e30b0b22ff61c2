export { adapterKeyMap } from './keys.ts';
export { AdapterArchitectureError, parseAdapter, type AdapterTensor, type ParsedAdapter, type PatchKind, type WeightPatch } from './parse.ts';
export { jsMatMul, patchedWeight, type MatMul } from './apply.ts';
export { ortMatMul } from './ort-matmul.ts';
