import { InterruptedError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';

/**
 * A reason, from outside the node, to fail the running prompt as an error (not an interruption):
 * a stray rejection or uncaught exception while it ran, a timeout, a dead execution host.
 */
export class PromptFault extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PromptFault';
  }
}

/** How long an aborted node may take to notice its signal before it is left behind. */
export const ABANDON_AFTER_MS = 2000;

/**
 * `work`, or the abort reason once `signal` aborts (InterruptedError unless the reason is a
 * PromptFault), or a PromptFault after `timeoutMs`. After an abort a node gets `ABANDON_AFTER_MS` to
 * stop on its own (a sampler stops at its next step, so the next prompt never overlaps it); one that
 * never settles, or ignores its signal, cannot hold the executor: its promise is left behind.
 */
export function settleOrAbort<T>(work: Promise<T>, signal: AbortSignal, timeoutMs: number | undefined, what: string): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      signal.removeEventListener('abort', onAbort);
      if (timer) clearTimeout(timer);
    };
    const onAbort = (): void => {
      if (timer) clearTimeout(timer);
      // Whatever the node does now (settles or throws InterruptedError), the prompt ends as aborted.
      const giveUp = setTimeout(() => reject(abortReason(signal)), ABANDON_AFTER_MS);
      const end = (): void => {
        clearTimeout(giveUp);
        reject(abortReason(signal));
      };
      work.then(end, end);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined && timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        done();
        reject(new PromptFault(`${what} did not finish within ${Math.round(timeoutMs / 1000)} s (timeout)`));
      }, timeoutMs);
    }
    work.then(
      (v) => {
        if (signal.aborted) return;
        done();
        resolve(v);
      },
      (e: unknown) => {
        if (signal.aborted) return;
        done();
        reject(e);
      },
    );
  });
}

export function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof PromptFault ? signal.reason : new InterruptedError();
}

/** The first output slot holding a LATENT with a NaN or infinite sample, as "slot N", or undefined. */
export function nonFiniteLatent(outputs: readonly unknown[][]): string | undefined {
  for (let slot = 0; slot < outputs.length; slot++) {
    for (const v of outputs[slot] ?? []) {
      const samples = (v as { samples?: Partial<Tensor> } | null)?.samples;
      const data = samples?.data;
      if (!(data instanceof Float32Array)) continue;
      for (let i = 0; i < data.length; i++) {
        // x - x is NaN exactly for NaN and ±Infinity, and is cheap enough for a latent.
        if (data[i] - data[i] !== 0) return `output ${slot}`;
      }
    }
  }
  return undefined;
}
