import type { QueueItem } from '../queue.ts';

/**
 * Where the scale-out mode keeps things in Redis. The prompts are one BullMQ queue; everything else
 * sits beside it under the same prefix, so one Redis (or one database of it) serves one farm.
 */
export const PREFIX = 'weft';
export const QUEUE_NAME = 'prompts';
export const KEYS = {
  /** Hash prompt_id → history entry JSON. */
  history: `${PREFIX}:history`,
  /** Sorted set prompt_id → store order, for listing and bounding the history. */
  historyOrder: `${PREFIX}:history:order`,
  historySeq: `${PREFIX}:history:seq`,
  /** INCR counter behind ComfyUI's queue `number`. */
  number: `${PREFIX}:number`,
  /** Hash worker id → JSON heartbeat (models loaded, busy, time), for model-affinity routing. */
  workers: `${PREFIX}:workers`,
} as const;
export const CHANNELS = {
  /** Executor events and previews, workers → fronts. */
  events: `${PREFIX}:events`,
  /** Interrupts and cache clears, fronts → workers. */
  control: `${PREFIX}:control`,
} as const;

/** What a BullMQ job carries: the queue item as the embedded queue stores it, plus routing hints. */
export interface PromptJob {
  item: QueueItem;
  /** Checkpoint file names the prompt loads (model-affinity routing). */
  models: string[];
  /** Worker chosen by the front because it has those models loaded. */
  prefer?: string;
}

export type EventMessage =
  | { kind: 'event'; clientId?: string; promptId: string; msg: { type: string; data: unknown } }
  | { kind: 'preview'; clientId?: string; promptId: string; node: string; jpeg: string }
  /** A worker took or finished a prompt: the fronts refresh `queue_remaining`. */
  | { kind: 'queue' };

export type ControlMessage = { kind: 'interrupt'; promptId?: string } | { kind: 'free' };

export interface WorkerBeat {
  id: string;
  host: string;
  pid: number;
  models: string[];
  busy: number;
  /** Prompt ids running here (operators: which process to look at). */
  running: string[];
  /** The last prompts it finished, newest first. */
  recent: string[];
  concurrency: number;
  at: number;
}

/** A heartbeat older than this means the worker is gone. */
export const BEAT_STALE_MS = 10_000;

/**
 * BullMQ runs lower priorities first and equal ones in insertion order, ComfyUI the lowest `number`
 * first (`front` gives negative numbers): the number is shifted into BullMQ's 1..2^21 range.
 */
export function priorityOf(number: number): number {
  return Math.min(2 ** 21, Math.max(1, Math.round(2 ** 20 + number)));
}

/** Checkpoint names a prompt loads: every `ckpt_name` input given as a constant. */
export function promptModels(item: QueueItem): string[] {
  const out = new Set<string>();
  for (const node of Object.values(item[2])) {
    const v = node.inputs?.ckpt_name;
    if (typeof v === 'string') out.add(v);
  }
  return [...out];
}
