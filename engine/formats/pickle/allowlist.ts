import type { Dtype } from '../../core/dtype.ts';
import { PyDict, PyGlobal, PyObject, PySet, PyTuple, StorageRef, TensorRef, type PyValue } from './values.ts';

/**
 * The globals a weights-only pickle may name, as A1111's `modules/safe.py` and PyTorch's
 * `weights_only` unpickler accept them, and what applying each one means here. Nothing is ever
 * looked up or run: each allowed name maps to a small pure function over already-read values.
 */

/** Storage classes (legacy typed storages) and the element type each holds. */
export const STORAGE_DTYPES: Readonly<Record<string, Dtype>> = {
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.DoubleStorage': 'F64',
  'torch.LongStorage': 'I64',
  'torch.IntStorage': 'I32',
  'torch.ShortStorage': 'I16',
  'torch.CharStorage': 'I8',
  'torch.ByteStorage': 'U8',
  'torch.BoolStorage': 'BOOL',
  // An untyped storage is bytes; its tensors are then U8 views.
  'torch.storage.UntypedStorage': 'U8',
  'torch.UntypedStorage': 'U8',
};

type Apply = (args: readonly PyValue[]) => PyValue;

export class PickleValueError extends Error {}

function int(v: PyValue, what: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  throw new PickleValueError(`${what} must be an integer, got ${describeValue(v)}`);
}

function intTuple(v: PyValue, what: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : undefined;
  if (!items) throw new PickleValueError(`${what} must be a tuple of integers, got ${describeValue(v)}`);
  return items.map((x, i) => int(x, `${what}[${i}]`));
}

export function describeValue(v: PyValue): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'object') return v.constructor.name;
  return typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v) : String(v);
}

/** torch._utils._rebuild_tensor(_v2): a strided view checked to lie inside its storage. */
function rebuildTensor(args: readonly PyValue[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef))
    throw new PickleValueError(`a tensor's storage must be a persistent storage, got ${describeValue(storage ?? null)}`);
  const off = int(offset ?? null, 'storage offset');
  const shape = intTuple(size ?? null, 'tensor size');
  const strides = intTuple(stride ?? null, 'tensor stride');
  if (shape.length !== strides.length)
    throw new PickleValueError(`tensor size ${JSON.stringify(shape)} and stride ${JSON.stringify(strides)} differ in rank`);
  if (shape.length > 16) throw new PickleValueError(`a tensor of rank ${shape.length} is beyond any weight`);
  if (off < 0 || shape.some((d) => d < 0) || strides.some((s) => s < 0))
    throw new PickleValueError('negative tensor offset, size or stride');
  if (!shape.includes(0)) {
    let last = off;
    for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * strides[i];
    if (last >= storage.numel) {
      throw new PickleValueError(
        `tensor view (offset ${off}, size ${JSON.stringify(shape)}, stride ${JSON.stringify(strides)}) reaches element ${last} of a storage of ${storage.numel}`,
      );
    }
  }
  return new TensorRef(storage, off, shape, strides);
}

/** numpy.core.multiarray.scalar(dtype, bytes): the plain number it stands for (training step counters and the like). */
function numpyScalar(args: readonly PyValue[]): PyValue {
  const [dtype, data] = args;
  if (!(dtype instanceof PyObject) || dtype.cls !== 'numpy.dtype' || !(data instanceof Uint8Array)) {
    throw new PickleValueError('numpy scalar needs a numpy dtype and bytes');
  }
  const name = dtype.args[0];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const need = (n: number): void => {
    if (data.length !== n) throw new PickleValueError(`numpy scalar of ${String(name)} has ${data.length} bytes, expected ${n}`);
  };
  switch (name) {
    case 'f8':
      need(8);
      return view.getFloat64(0, true);
    case 'f4':
      need(4);
      return view.getFloat32(0, true);
    case 'i8': {
      need(8);
      const v = view.getBigInt64(0, true);
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case 'i4':
      need(4);
      return view.getInt32(0, true);
    case 'b1':
      need(1);
      return data[0] !== 0;
    default:
      throw new PickleValueError(`numpy scalar of dtype ${String(name)} is not read`);
  }
}

/** _codecs.encode(text, 'latin1'): how protocol 2 pickles carry bytes; only latin-1 (and its aliases) is accepted. */
function codecsEncode(args: readonly PyValue[]): Uint8Array {
  const [text, encoding] = args;
  if (typeof text !== 'string') throw new PickleValueError('_codecs.encode needs a string');
  if (encoding !== 'latin1' && encoding !== 'latin-1' && encoding !== 'iso-8859-1')
    throw new PickleValueError(`_codecs.encode with encoding ${describeValue(encoding ?? null)} is not read`);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 255) throw new PickleValueError('_codecs.encode: a character beyond latin-1');
    out[i] = c;
  }
  return out;
}

function orderedDict(args: readonly PyValue[]): PyDict {
  const d = new PyDict();
  const [pairs] = args;
  if (pairs === undefined) return d;
  const items = Array.isArray(pairs) ? pairs : pairs instanceof PyTuple ? pairs.items : undefined;
  if (!items) throw new PickleValueError('OrderedDict takes a list of pairs');
  for (const p of items) {
    const kv = p instanceof PyTuple ? p.items : Array.isArray(p) ? p : undefined;
    if (!kv || kv.length !== 2) throw new PickleValueError('OrderedDict takes a list of pairs');
    d.map.set(kv[0], kv[1]);
  }
  return d;
}

function setOf(frozen: boolean): Apply {
  return (args) => {
    const [items] = args;
    if (items === undefined) return new PySet([], frozen);
    const list = Array.isArray(items) ? items : items instanceof PyTuple ? items.items : undefined;
    if (!list) throw new PickleValueError('set takes a list');
    return new PySet([...list], frozen);
  };
}

const record =
  (cls: string): Apply =>
  (args) =>
    new PyObject(cls, args);

const REDUCERS: Readonly<Record<string, Apply>> = {
  'torch._utils._rebuild_tensor_v2': rebuildTensor,
  'torch._utils._rebuild_tensor': rebuildTensor,
  // (data, requires_grad, backward_hooks): a Parameter is its tensor here.
  'torch._utils._rebuild_parameter': (args) => {
    if (!(args[0] instanceof TensorRef)) throw new PickleValueError('_rebuild_parameter needs a tensor');
    return args[0];
  },
  // (data, requires_grad, backward_hooks, state): newer torch's Parameter with extra attributes.
  'torch._utils._rebuild_parameter_with_state': (args) => {
    if (!(args[0] instanceof TensorRef)) throw new PickleValueError('_rebuild_parameter_with_state needs a tensor');
    return args[0];
  },
  // (func, type, args, state): a tensor subclass; only plain tensors and Parameters, rebuilt by an allowed func.
  'torch._tensor._rebuild_from_type_v2': (args) => {
    const [func, type, inner] = args;
    if (!(type instanceof PyGlobal) || !TENSOR_TYPES.has(type.qualified))
      throw new PickleValueError(`_rebuild_from_type_v2 of ${type instanceof PyGlobal ? type.qualified : describeValue(type ?? null)}`);
    return applyGlobal(func ?? null, inner ?? null);
  },
  'collections.OrderedDict': orderedDict,
  'typing.OrderedDict': orderedDict,
  'torch.Size': (args) => new PyTuple(intTuple(args[0] ?? new PyTuple([]), 'torch.Size')),
  'builtins.set': setOf(false),
  'builtins.frozenset': setOf(true),
  '__builtin__.set': setOf(false),
  'builtins.slice': record('builtins.slice'),
  'numpy.core.multiarray.scalar': numpyScalar,
  'numpy._core.multiarray.scalar': numpyScalar,
  'numpy.dtype': record('numpy.dtype'),
  '_codecs.encode': codecsEncode,
};

/** Classes that may be created by NEWOBJ and filled by BUILD, kept as inert records (A1111 lets Lightning's checkpoint callback through). */
const RECORD_CLASSES = new Set([
  'pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint',
  'torch.nn.modules.container.ParameterDict',
  'collections.OrderedDict',
]);

/** Tensor classes `_rebuild_from_type_v2` may name (as PyTorch's weights_only unpickler allows). */
const TENSOR_TYPES = new Set(['torch.nn.parameter.Parameter', 'torch.Tensor']);

/** Whether `module.name` may appear in a GLOBAL at all. */
export function isAllowedGlobal(module: string, name: string): boolean {
  const q = `${module}.${name}`;
  return (
    Object.hasOwn(REDUCERS, q) ||
    Object.hasOwn(STORAGE_DTYPES, q) ||
    RECORD_CLASSES.has(q) ||
    TENSOR_TYPES.has(q) ||
    q === 'pytorch_lightning.callbacks.model_checkpoint'
  );
}

/** REDUCE: apply an allowed callable to its argument tuple. */
export function applyGlobal(fn: PyValue, args: PyValue): PyValue {
  if (!(fn instanceof PyGlobal)) throw new PickleValueError(`REDUCE on ${describeValue(fn)}, not an allowed global`);
  const reducer = Object.hasOwn(REDUCERS, fn.qualified) ? REDUCERS[fn.qualified] : undefined;
  if (!reducer) throw new PickleValueError(`${fn.qualified} may be named but not called`);
  if (!(args instanceof PyTuple)) throw new PickleValueError(`REDUCE arguments for ${fn.qualified} must be a tuple`);
  return reducer(args.items);
}

/** NEWOBJ: only record classes (and OrderedDict) are created. */
export function newObject(cls: PyValue, args: PyValue): PyValue {
  if (!(cls instanceof PyGlobal) || !RECORD_CLASSES.has(cls.qualified))
    throw new PickleValueError(`NEWOBJ of ${cls instanceof PyGlobal ? cls.qualified : describeValue(cls)} is not allowed`);
  if (!(args instanceof PyTuple)) throw new PickleValueError('NEWOBJ arguments must be a tuple');
  if (cls.qualified === 'collections.OrderedDict') return orderedDict(args.items);
  return new PyObject(cls.qualified, args.items);
}

/** BUILD: set state on a record; a dict may take a dict state (ParameterDict); tensors take none that matters. */
export function build(target: PyValue, state: PyValue): void {
  if (target instanceof PyObject) {
    target.state = state;
    return;
  }
  // _rebuild_tensor_v2 results may be followed by BUILD of their (usually empty) __dict__ by newer torch.
  if (target instanceof TensorRef || target instanceof PyDict) return;
  throw new PickleValueError(`BUILD on ${describeValue(target)}`);
}
