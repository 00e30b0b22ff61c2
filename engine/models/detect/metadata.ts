/**
 * The metadata_props that ultralytics' exporter writes into an ONNX file: each value is Python's
 * `str()` of the setting, so `names` is a dict literal ("{0: 'face', 1: 'hand'}"), `imgsz` a list
 * ("[640, 640]"), `stride` and `batch` integers, `task` a word. Parsed by hand (no eval), bounded.
 */

export interface YoloMetadata {
  /** Class names in class-index order. */
  readonly names: readonly string[];
  /** [height, width] the model was exported for, when the file says. */
  readonly imgsz?: readonly [number, number];
  readonly stride?: number;
  /** `detect`, `segment`, ... as ultralytics names its tasks. */
  readonly task?: string;
  /** True when the export says the head already ran NMS (YOLOv10, `nms=True` exports). */
  readonly end2end?: boolean;
}

const MAX_CLASSES = 100_000;

/** Python's repr of a str: single or double quotes, backslash escapes. */
function readPyString(s: string, at: number): { value: string; end: number } {
  const q = s[at];
  if (q !== "'" && q !== '"') throw new Error(`expected a quoted name at ${at}`);
  let out = '';
  let i = at + 1;
  while (i < s.length && s[i] !== q) {
    if (s[i] === '\\') {
      const c = s[i + 1];
      const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"' };
      if (c in simple) {
        out += simple[c];
        i += 2;
      } else if (c === 'x' || c === 'u' || c === 'U') {
        const n = c === 'x' ? 2 : c === 'u' ? 4 : 8;
        const hex = s.slice(i + 2, i + 2 + n);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) throw new Error(`bad escape at ${i}`);
        out += String.fromCodePoint(parseInt(hex, 16));
        i += 2 + n;
      } else throw new Error(`unsupported escape \\${c} at ${i}`);
    } else out += s[i++];
  }
  if (i >= s.length) throw new Error('unterminated name');
  return { value: out, end: i + 1 };
}

/** Parses "{0: 'face', 1: 'hand'}" (also the list form "['face', 'hand']") into names by index. */
export function parseNames(text: string): string[] {
  const s = text.trim();
  const names: string[] = [];
  const isList = s.startsWith('[');
  if (!isList && !s.startsWith('{')) throw new Error(`names is neither a dict nor a list: ${s.slice(0, 40)}`);
  const close = isList ? ']' : '}';
  let i = 1;
  const ws = (): void => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  const seen = new Map<number, string>();
  let next = 0;
  for (;;) {
    ws();
    if (s[i] === close) break;
    let index = next;
    if (!isList) {
      const m = /^-?\d+/.exec(s.slice(i, i + 12));
      if (!m) throw new Error(`expected a class index at ${i}`);
      index = Number(m[0]);
      i += m[0].length;
      ws();
      if (s[i] !== ':') throw new Error(`expected ':' at ${i}`);
      i++;
      ws();
    }
    const str = readPyString(s, i);
    i = str.end;
    if (index < 0 || index >= MAX_CLASSES || seen.has(index)) throw new Error(`class index ${index} is out of range or repeated`);
    seen.set(index, str.value);
    next = index + 1;
    ws();
    if (s[i] === ',') i++;
    else if (s[i] !== close) throw new Error(`expected ',' or '${close}' at ${i}`);
  }
  for (let k = 0; k < seen.size; k++) {
    const n = seen.get(k);
    if (n === undefined) throw new Error(`class ${k} has no name (indices must run 0..${seen.size - 1})`);
    names.push(n);
  }
  return names;
}

function parseImgsz(text: string): [number, number] | undefined {
  const nums = (text.match(/\d+/g) ?? []).map(Number);
  if (nums.length === 1) return [nums[0], nums[0]];
  if (nums.length === 2) return [nums[0], nums[1]];
  return undefined;
}

/** Reads ultralytics' metadata; `file` only names the model in errors. */
export function parseYoloMetadata(meta: ReadonlyMap<string, string>, file: string): YoloMetadata {
  const raw = meta.get('names');
  if (raw === undefined) {
    throw new Error(`${file}: no 'names' in the ONNX metadata; export the model with ultralytics (yolo export model=X.pt format=onnx), which writes the class names`);
  }
  let names: string[];
  try {
    names = parseNames(raw);
  } catch (e) {
    throw new Error(`${file}: cannot read the class names in the ONNX metadata: ${(e as Error).message}`, { cause: e });
  }
  if (names.length === 0) throw new Error(`${file}: the ONNX metadata lists no class names`);
  const imgsz = meta.has('imgsz') ? parseImgsz(meta.get('imgsz') ?? '') : undefined;
  const stride = Number(meta.get('stride'));
  return {
    names,
    imgsz,
    stride: Number.isInteger(stride) && stride > 0 ? stride : undefined,
    task: meta.get('task'),
    end2end: meta.get('end2end') === 'True' || undefined,
  };
}
