/** RESP2 encoding and incremental decoding (the Redis protocol), for the client in redis-client.ts. */

export type RespArg = string | number | Buffer | null | undefined | readonly RespArg[];
export type RespValue = string | number | null | RespError | RespValue[];

/** An error reply (`-ERR …`): a value, so one failed command of a batch does not hide the others. */
export class RespError extends Error {
  override name = 'ReplyError';
}

function flatten(args: readonly RespArg[], out: (string | Buffer)[]): void {
  for (const a of args) {
    if (Array.isArray(a)) flatten(a as readonly RespArg[], out);
    // As ioredis: a missing argument is an empty string (BullMQ leaves unused key slots undefined).
    else if (a === null || a === undefined) out.push('');
    else out.push(Buffer.isBuffer(a) ? a : String(a as string | number));
  }
}

export function encodeCommand(args: readonly RespArg[]): Buffer {
  const flat: (string | Buffer)[] = [];
  flatten(args, flat);
  const parts: Buffer[] = [Buffer.from(`*${flat.length}\r\n`)];
  for (const a of flat) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(a, 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

const INCOMPLETE = Symbol('incomplete');

/** Reads replies from a byte stream that arrives in arbitrary chunks. */
export class RespDecoder {
  private buf: Buffer = Buffer.alloc(0);

  /** Appends bytes and returns every reply now complete, in order. */
  push(chunk: Buffer): RespValue[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: RespValue[] = [];
    let pos = 0;
    for (;;) {
      const r = this.parse(pos);
      if (r === INCOMPLETE) break;
      out.push(r.value);
      pos = r.end;
    }
    this.buf = pos >= this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos);
    return out;
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
  }

  private parse(pos: number): { value: RespValue; end: number } | typeof INCOMPLETE {
    const nl = this.buf.indexOf('\r\n', pos);
    if (nl < 0) return INCOMPLETE;
    const type = String.fromCharCode(this.buf[pos]);
    const line = this.buf.toString('utf8', pos + 1, nl);
    const next = nl + 2;
    switch (type) {
      case '+':
        return { value: line, end: next };
      case '-':
        return { value: new RespError(line), end: next };
      case ':':
        return { value: Number(line), end: next };
      case '$': {
        const n = Number(line);
        if (n < 0) return { value: null, end: next };
        if (this.buf.length < next + n + 2) return INCOMPLETE;
        return { value: this.buf.toString('utf8', next, next + n), end: next + n + 2 };
      }
      case '*': {
        const n = Number(line);
        if (n < 0) return { value: null, end: next };
        const items: RespValue[] = [];
        let at = next;
        for (let i = 0; i < n; i++) {
          const r = this.parse(at);
          if (r === INCOMPLETE) return INCOMPLETE;
          items.push(r.value);
          at = r.end;
        }
        return { value: items, end: at };
      }
      default:
        throw new Error(`Redis protocol error: unexpected reply type ${JSON.stringify(type)}`);
    }
  }
}
