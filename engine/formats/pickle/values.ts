import type { Dtype } from '../../core/dtype.ts';

/**
 * The values a weights-only pickle can hold once read: Python's plain containers mapped onto
 * distinct JS shapes (a list is an array, a tuple a PyTuple, a dict a PyDict), and references to
 * torch storages and tensor views that are resolved against the file's records later.
 */

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PySet
  | StorageRef
  | TensorRef
  | PyObject
  | PyGlobal;

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

export class PyDict {
  readonly map = new Map<PyValue, PyValue>();
}

export class PySet {
  constructor(
    readonly items: PyValue[],
    readonly frozen: boolean,
  ) {}
}

/** An allowed global, by `module.name`, as it sits on the stack before REDUCE/NEWOBJ applies it. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An inert record of an allowed class (a slice, a numpy dtype, a Lightning callback): its class and state, nothing run. */
export class PyObject {
  state: PyValue = null;
  constructor(
    readonly cls: string,
    readonly args: readonly PyValue[],
  ) {}
}

/** A storage named by a persistent id `('storage', type, key, location, numel)`: `numel` elements of `dtype`. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: Dtype,
    readonly numel: number,
    readonly location: string,
  ) {}
}

/** A tensor as torch rebuilds it: a strided view of a storage (offsets and strides in elements). */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
  get dtype(): Dtype {
    return this.storage.dtype;
  }
}
