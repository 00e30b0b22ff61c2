/**
 * The public surface for custom node packages: `import { defineNode } from 'weft/api'`.
 * Anything not exported here may change without notice.
 */
export { defineNode } from './registry/types.ts';
export type { AnyNodeDefinition, InputSpec, OutputSpec, NodeDefinition, UiOutput } from './registry/types.ts';
export type { NodeContext, ListingContext } from './registry/context.ts';
export type { PreviewImage } from './core/preview.ts';
export type { Logger } from './core/log.ts';
export { InterruptedError } from './core/errors.ts';
export type { SocketValueTypes } from './registry/sockets.ts';
export type { Tensor, ImageTensor, MaskTensor, Latent } from './core/tensor.ts';
export { tensor, zeros, full, cloneTensor, numel, sliceBatch, concatBatch } from './core/tensor.ts';
export type { ModelHandle, ClipHandle, VaeHandle } from './models/handles.ts';
export type { Conditioning, ConditioningEntry } from './sampling/conditioning.ts';
