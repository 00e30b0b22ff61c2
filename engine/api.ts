/**
 * The public surface for custom node packages: `import { defineNode } from 'weft/api'`.
 * Anything not exported here may change without notice.
 */
export { defineNode } from './registry/types.ts';
export type {
  AnyNodeDefinition,
  InputSpec,
  OutputSpec,
  NodeDefinition,
  UiOutput,
} from './registry/types.ts';
export type { NodeContext, ListingContext, PreviewImage, Logger } from './registry/context.ts';
export { InterruptedError } from './registry/context.ts';
export type { SocketValueTypes } from './registry/sockets.ts';
export type { Tensor, ImageTensor, MaskTensor, Latent } from './image/tensor.ts';
export { tensor, zeros, full, cloneTensor, numel, sliceBatch, concatBatch } from './image/tensor.ts';
export type { ModelHandle, ClipHandle, VaeHandle } from './models/handles.ts';
export type { Conditioning, ConditioningEntry } from './sampling/conditioning.ts';
