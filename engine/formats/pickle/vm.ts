import { applyGlobal, build, describeValue, isAllowedGlobal, newObject, PickleValueError } from './allowlist.ts';
import { PyDict, PyGlobal, PySet, PyTuple, type PyValue } from './values.ts';

/**
 * A pickle reader that never executes: it interprets the opcodes torch.save emits (protocols 0-5,
 * binary forms) over plain JS values. GLOBAL names are checked against an allowlist the moment they
 * are read, and REDUCE/NEWOBJ/BUILD only apply the pure functions allowlist.ts maps those names to.
 * Every length is checked against the bytes that remain, and the memo, stack, mark depth and object
 * count are bounded, so a hostile file fails fast with the opcode's byte offset.
 */

export interface PickleLimits {
  maxMemo: number;
  maxStack: number;
  maxMarks: number;
  maxObjects: number;
}

export const DEFAULT_LIMITS: PickleLimits = { maxMemo: 4_000_000, maxStack: 4_000_000, maxMarks: 1000, maxObjects: 20_000_000 };

export class PickleError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (pickle byte ${offset})`);
    this.name = 'PickleError';
  }
}

/** A global the allowlist refuses: `module.name` is in the message and on the error. */
export class PickleGlobalRefusedError extends PickleError {
  constructor(
    readonly global: string,
    offset: number,
  ) {
    super(`refused global ${global}: only tensor, storage and plain-container globals are read from pickled weights`, offset);
    this.name = 'PickleGlobalRefusedError';
  }
}

const MARK = Symbol('mark');
type Slot = PyValue | typeof MARK;

/** Persistent-id resolver (torch storages). */
export type PersistentLoad = (pid: PyValue) => PyValue;

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Read one pickle from `data` starting at `start`; returns its value and the offset after STOP. */
export function readPickle(
  data: Uint8Array,
  start: number,
  persistentLoad: PersistentLoad,
  limits: PickleLimits = DEFAULT_LIMITS,
): { value: PyValue; end: number } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: Slot[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  let pos = start;
  let op = start;
  let objects = 0;

  const fail = (msg: string): never => {
    throw new PickleError(msg, op);
  };
  const need = (n: number): void => {
    if (n < 0 || n > data.length - pos) fail(`truncated: ${n} bytes wanted, ${data.length - pos} left`);
  };
  const u8 = (): number => {
    need(1);
    return data[pos++];
  };
  const u16 = (): number => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    // Anything past 2^53 is beyond the remaining bytes anyway; need() reports it.
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = (): string => {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0 || nl - pos > 4096) fail('truncated or overlong text argument');
    const s = String.fromCharCode(...data.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  const utf8 = (b: Uint8Array): string => {
    try {
      return decoder.decode(b);
    } catch {
      return fail('invalid UTF-8 in a string');
    }
  };
  const latin1 = (b: Uint8Array): string => {
    let s = '';
    for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
    return s;
  };
  const push = (v: PyValue): void => {
    if (stack.length >= limits.maxStack) fail(`stack deeper than ${limits.maxStack}`);
    if (++objects > limits.maxObjects) fail(`more than ${limits.maxObjects} objects`);
    stack.push(v);
  };
  const pop = (): PyValue => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) fail('stack underflow');
    const v = stack.pop();
    if (v === MARK || v === undefined) return fail('stack underflow');
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK || (marks.length && stack.length <= marks[marks.length - 1])) return fail('stack underflow');
    return v;
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) return fail('no MARK to pop to');
    const items = stack.splice(m) as PyValue[];
    return items;
  };
  const put = (i: number): void => {
    if (!memo.has(i) && memo.size >= limits.maxMemo) fail(`memo larger than ${limits.maxMemo}`);
    memo.set(i, top());
  };
  const get = (i: number): void => {
    const v = memo.get(i);
    if (v === undefined) fail(`memo ${i} is not set`);
    push(v as PyValue);
  };
  const global = (module: string, name: string): void => {
    if (!isAllowedGlobal(module, name)) throw new PickleGlobalRefusedError(`${module}.${name}`, op);
    push(new PyGlobal(module, name));
  };
  const setItems = (target: PyValue, kv: readonly PyValue[]): void => {
    if (!(target instanceof PyDict)) fail(`SETITEM on ${describeValue(target)}`);
    if (kv.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < kv.length; i += 2) (target as PyDict).map.set(kv[i], kv[i + 1]);
  };
  const appendItems = (target: PyValue, items: readonly PyValue[]): void => {
    if (!Array.isArray(target)) fail(`APPEND on ${describeValue(target)}`);
    const list = target as PyValue[];
    for (const x of items) list.push(x);
  };
  const applied = (f: () => PyValue): PyValue => {
    try {
      return f();
    } catch (e) {
      if (e instanceof PickleValueError) return fail(e.message);
      throw e;
    }
  };

  for (;;) {
    op = pos;
    const code = u8();
    switch (code) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME: a length hint only
        u64();
        break;
      case 0x2e: {
        // STOP
        const v = pop();
        return { value: v, end: pos };
      }
      case 0x28: // MARK
        if (marks.length >= limits.maxMarks) fail(`MARKs nested deeper than ${limits.maxMarks}`);
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (stack.length && stack[stack.length - 1] === MARK) stack.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4a: // BININT
        need(4);
        push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x49: {
        // INT (text): also True/False as 01/00
        const s = line().trim();
        if (s === '01' || s === '00') push(s === '01');
        else if (/^-?\d{1,30}$/.test(s)) {
          const b = BigInt(s);
          push(b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);
        } else fail('bad INT');
        break;
      }
      case 0x8a: // LONG1
      case 0x8b: {
        // LONG4
        const n = code === 0x8a ? u8() : u32();
        if (n > 1024) fail(`a ${n}-byte integer is beyond any weight file`);
        const b = bytes(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        push(utf8(bytes(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8(bytes(u8())));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8(bytes(u64())));
        break;
      case 0x54: // BINSTRING (Python 2 str)
        push(latin1(bytes(u32())));
        break;
      case 0x55: // SHORT_BINSTRING
        push(latin1(bytes(u8())));
        break;
      case 0x42: // BINBYTES
        push(bytes(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(bytes(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        push(bytes(u64()).slice());
        break;
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x6c: // LIST
        push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x29: // EMPTY_TUPLE
        push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x7d: // EMPTY_DICT
        push(new PyDict());
        break;
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x8f: // EMPTY_SET
        push(new PySet([], false));
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof PySet) || s.frozen) fail(`ADDITEMS on ${describeValue(s)}`);
        (s as PySet).items.push(...items);
        break;
      }
      case 0x91: // FROZENSET
        push(new PySet(popMark(), true));
        break;
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const module = line();
        global(module, line());
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        global(module as string, name as string);
        objects--; // the two strings were counted already
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        push(applied(() => applyGlobal(fn, args)));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        push(applied(() => newObject(cls, args)));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const target = top();
        applied(() => {
          build(target, state);
          return null;
        });
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        push(applied(() => persistentLoad(pid)));
        break;
      }
      case 0x69: {
        // INST: names a class to call; refused by name, and never read even when allowed
        const module = line();
        const name = line();
        if (!isAllowedGlobal(module, name)) throw new PickleGlobalRefusedError(`${module}.${name}`, op);
        fail('INST is not read by the weights-only reader');
        break;
      }
      case 0x50: // PERSID (text id): torch never writes it
        fail('text persistent ids (PERSID) are not read');
        break;
      case 0x70: {
        // PUT (text)
        const s = line();
        if (!/^\d{1,10}$/.test(s)) fail('bad PUT');
        put(Number(s));
        break;
      }
      case 0x71: // BINPUT
        put(u8());
        break;
      case 0x72: // LONG_BINPUT
        put(u32());
        break;
      case 0x94: // MEMOIZE
        put(memo.size);
        break;
      case 0x67: {
        // GET (text)
        const s = line();
        if (!/^\d{1,10}$/.test(s)) fail('bad GET');
        get(Number(s));
        break;
      }
      case 0x68: // BINGET
        get(u8());
        break;
      case 0x6a: // LONG_BINGET
        get(u32());
        break;
      default:
        fail(`opcode 0x${code.toString(16).padStart(2, '0')} is not read by the weights-only reader`);
    }
  }
}
