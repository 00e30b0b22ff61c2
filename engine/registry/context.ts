import type { FolderPaths } from '../paths/folders.ts';
import type { Logger } from '../core/log.ts';
import type { PreviewImage } from '../core/preview.ts';

/** Folder listings for computed combos, fingerprints and validation (no execution state). */
export interface ListingContext {
  readonly paths: FolderPaths;
}

/**
 * Long-lived engine services handed to every node (model manager, runtime, ...). Engine modules add
 * their service by declaration merging, so this file never imports them.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface EngineServices {}

/** Everything a node may touch of the world; nodes get nothing else, which keeps them testable. */
export interface NodeContext extends ListingContext {
  readonly nodeId: string;
  readonly classType: string;
  readonly promptId: string;
  readonly signal: AbortSignal;
  /** Throws InterruptedError if the prompt was interrupted; call it between steps of long work. */
  checkInterrupted(): void;
  /** Reports progress as ComfyUI's `progress` event (value of max), with an optional preview image. */
  progress(value: number, max: number, preview?: PreviewImage): void;
  /** The API prompt being executed (what SaveImage embeds as the `prompt` chunk). */
  readonly prompt: Readonly<Record<string, unknown>>;
  /** `extra_data.extra_pnginfo` (normally `{ workflow }`). */
  readonly extraPngInfo: Readonly<Record<string, unknown>>;
  readonly services: EngineServices;
  readonly log: Logger;
}
