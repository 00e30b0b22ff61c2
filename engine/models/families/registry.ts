import type { WeightSource } from '../../core/weights.ts';
import type { AssembleContext, CheckpointParts, ModelFamily } from './family.ts';

/** A checkpoint a family recognised, with that family's config bound (it never reaches another family). */
export interface DetectedCheckpoint {
  readonly family: ModelFamily;
  readonly config: unknown;
  assemble(ctx: AssembleContext): CheckpointParts;
}

/**
 * The model families the manager can load, asked in turn which one a checkpoint is. Families are
 * asked in the order they were registered; the fallback last. The fallback is the family that
 * explains every file no family claimed (SD1: it names SDXL, Flux, a LoRA, a standalone VAE, ...),
 * so its `detect` throws rather than answering undefined.
 */
export class FamilyRegistry {
  private readonly families: ModelFamily[] = [];

  constructor(private readonly fallback: ModelFamily) {}

  /** Adds a family, asked before the fallback and after those registered earlier. */
  register<C>(family: ModelFamily<C>): this {
    if (family.id === this.fallback.id || this.families.some((f) => f.id === family.id)) throw new Error(`model family '${family.id}' is registered twice`);
    this.families.push(family);
    return this;
  }

  /** Every family in the order they are asked. */
  list(): readonly ModelFamily[] {
    return [...this.families, this.fallback];
  }

  get(id: string): ModelFamily | undefined {
    return this.list().find((f) => f.id === id);
  }

  detect(source: WeightSource): DetectedCheckpoint {
    for (const family of this.list()) {
      const config = family.detect(source);
      if (config !== undefined) return { family, config, assemble: (ctx) => family.assemble(config, ctx) };
    }
    throw new Error(`no model family recognises this checkpoint (tried ${this.list().map((f) => f.name).join(', ')})`);
  }
}
