import type { SocketValue } from './sockets.ts';
import type { NodeContext, ListingContext } from './context.ts';

/** Options every input may carry; the editor and /object_info read them. */
interface CommonInputOptions {
  tooltip?: string;
  /** Socket only, no widget (ComfyUI `forceInput`). */
  forceInput?: boolean;
  /** Not scheduled up front; the node asks for it through `checkLazyStatus`. */
  lazy?: boolean;
  /** The node receives the `[nodeId, slot]` link itself instead of the value. */
  rawLink?: boolean;
  /** Shown in an "advanced" group by the editor. */
  advanced?: boolean;
}

export interface IntInput extends CommonInputOptions {
  type: 'INT';
  default?: number;
  min?: number;
  max?: number;
  step?: number;
  /** Adds the editor's fixed/increment/decrement/randomize widget after this one. */
  controlAfterGenerate?: boolean;
  display?: 'number' | 'slider' | 'color';
}

export interface FloatInput extends CommonInputOptions {
  type: 'FLOAT';
  default?: number;
  min?: number;
  max?: number;
  step?: number;
  round?: number | false;
  display?: 'number' | 'slider';
}

export interface StringInput extends CommonInputOptions {
  type: 'STRING';
  default?: string;
  multiline?: boolean;
  dynamicPrompts?: boolean;
  placeholder?: string;
}

export interface BooleanInput extends CommonInputOptions {
  type: 'BOOLEAN';
  default?: boolean;
  labelOn?: string;
  labelOff?: string;
}

/** Choices may be computed when object_info is produced (e.g. the files in a model folder). */
export type ComboOptions = readonly string[] | ((env: ListingContext) => readonly string[]);

export interface ComboInput extends CommonInputOptions {
  type: 'COMBO';
  options: ComboOptions;
  default?: string;
  /** LoadImage-style upload button in the editor. */
  imageUpload?: boolean;
  controlAfterGenerate?: boolean;
}

/** A typed socket (MODEL, LATENT, a custom type, or '*' for any). */
export interface SocketInput extends CommonInputOptions {
  type: string;
}

export type InputSpec = IntInput | FloatInput | StringInput | BooleanInput | ComboInput | SocketInput;

export type HiddenKind = 'PROMPT' | 'EXTRA_PNGINFO' | 'UNIQUE_ID' | 'DYNPROMPT';

export interface OutputSpec {
  type: string;
  name?: string;
  isList?: boolean;
  tooltip?: string;
}

/** The value a node receives for one input spec. */
export type InputValue<S> = S extends { type: 'INT' | 'FLOAT' }
  ? number
  : S extends { type: 'STRING' | 'COMBO' }
    ? string
    : S extends { type: 'BOOLEAN' }
      ? boolean
      : S extends { rawLink: true }
        ? readonly [string, number]
        : S extends { type: infer T extends string }
          ? SocketValue<T>
          : unknown;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

type HiddenValues<H> = { [K in keyof H]?: unknown };

/** Arguments of `run`: required inputs present, optional and lazy ones possibly undefined. */
export type RunArgs<R, O, H, IsList extends boolean> = IsList extends true
  ? Simplify<
      { [K in keyof R]: R[K] extends { lazy: true } ? InputValue<R[K]>[] | undefined : InputValue<R[K]>[] } & {
        [K in keyof O]?: InputValue<O[K]>[];
      } & HiddenValues<H>
    >
  : Simplify<
      { [K in keyof R]: R[K] extends { lazy: true } ? InputValue<R[K]> | undefined : InputValue<R[K]> } & {
        [K in keyof O]?: InputValue<O[K]>;
      } & HiddenValues<H>
    >;

/** Output tuple of `run`: an output flagged `isList` returns an array of items. */
export type RunOutputs<Out extends readonly OutputSpec[]> = {
  -readonly [I in keyof Out]: Out[I] extends { isList: true; type: infer T extends string }
    ? readonly SocketValue<T>[]
    : Out[I] extends { type: infer T extends string }
      ? SocketValue<T>
      : never;
};

/** What an output node shows in the editor (and what history stores), e.g. `{ images: [...] }`. */
export type UiOutput = Record<string, unknown[]>;

export interface NodeResultObject<Out extends readonly OutputSpec[]> {
  result?: RunOutputs<Out>;
  ui?: UiOutput;
}

export type NodeResult<Out extends readonly OutputSpec[]> = RunOutputs<Out> | NodeResultObject<Out>;

export interface NodeDefinition<
  R extends Record<string, InputSpec> = Record<string, InputSpec>,
  O extends Record<string, InputSpec> = Record<string, InputSpec>,
  H extends Record<string, HiddenKind> = Record<string, HiddenKind>,
  Out extends readonly OutputSpec[] = readonly OutputSpec[],
  IsList extends boolean = boolean,
> {
  /** Class name used in workflows and prompts (`class_type`). */
  name: string;
  displayName?: string;
  category?: string;
  description?: string;
  inputs?: { required?: R; optional?: O; hidden?: H };
  outputs: Out;
  outputNode?: boolean;
  /** ComfyUI INPUT_IS_LIST: run once with whole lists instead of once per item. */
  inputIsList?: IsList;
  /** Re-run every time even when inputs are unchanged (ComfyUI NOT_IDEMPOTENT). */
  notIdempotent?: boolean;
  deprecated?: boolean;
  experimental?: boolean;
  searchAliases?: readonly string[];
  /** Module path shown as `python_module` (set by the loader for custom packages). */
  module?: string;
  /**
   * ComfyUI IS_CHANGED: a value that changes when the node's result would (a file's hash or mtime).
   * Receives the constant (widget) inputs. NaN means "always run".
   */
  fingerprint?: (inputs: Readonly<Record<string, unknown>>, env: ListingContext) => string | number | Promise<string | number>;
  /** ComfyUI VALIDATE_INPUTS: `true` or a message. Receives constant inputs and the linked types. */
  validateInputs?: (
    inputs: Readonly<Record<string, unknown>>,
    linkedTypes: Readonly<Record<string, string>>,
    env: ListingContext,
  ) => true | string | Promise<true | string>;
  /** Which lazy inputs are still needed, given the ones available so far (undefined = not evaluated). */
  checkLazyStatus?: (available: Readonly<Record<string, unknown>>, ctx: NodeContext) => string[] | Promise<string[]>;
  run: (args: RunArgs<R, O, H, IsList>, ctx: NodeContext) => NodeResult<Out> | Promise<NodeResult<Out>>;
}

/** The erased form the registry and executor handle. */
export interface AnyNodeDefinition {
  name: string;
  displayName?: string;
  category?: string;
  description?: string;
  inputs?: {
    required?: Record<string, InputSpec>;
    optional?: Record<string, InputSpec>;
    hidden?: Record<string, HiddenKind>;
  };
  outputs: readonly OutputSpec[];
  outputNode?: boolean;
  inputIsList?: boolean;
  notIdempotent?: boolean;
  deprecated?: boolean;
  experimental?: boolean;
  searchAliases?: readonly string[];
  module?: string;
  fingerprint?: NodeDefinition['fingerprint'];
  validateInputs?: NodeDefinition['validateInputs'];
  checkLazyStatus?: NodeDefinition['checkLazyStatus'];
  run: (args: Record<string, unknown>, ctx: NodeContext) => unknown;
}

/**
 * Declare a node. Types of `run`'s arguments and return value are inferred from the declaration:
 * `inputs.required.steps: { type: 'INT' }` gives `args.steps: number`, `outputs: [{ type: 'LATENT' }]`
 * requires `run` to return `[Latent]` (or `{ result: [Latent], ui }`).
 */
export function defineNode<
  const R extends Record<string, InputSpec> = {},
  const O extends Record<string, InputSpec> = {},
  const H extends Record<string, HiddenKind> = {},
  const Out extends readonly OutputSpec[] = readonly [],
  const IsList extends boolean = false,
>(def: NodeDefinition<R, O, H, Out, IsList>): AnyNodeDefinition {
  return def as unknown as AnyNodeDefinition;
}

export function isResultObject(v: unknown): v is { result?: unknown[]; ui?: UiOutput } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && ('result' in v || 'ui' in v);
}
