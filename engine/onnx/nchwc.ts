import onnxProto from 'onnx-proto';

type Graph = onnxProto.onnx.IGraphProto;
type Node = onnxProto.onnx.INodeProto;
type Tensor = onnxProto.onnx.ITensorProto;

/**
 * ORT's NCHWc layout pass (its `NchwcTransformer`, optimisation level "all" on the CPU) done by Weft
 * while it expands a build, so that ORT's own pass finds nothing to do. ORT's pass reorders every conv
 * weight into fresh memory at each session creation: ~7 s of the SD1.5 UNet's first load on the
 * 2-core VM, and its saved graph another ~9 s of serialisation, which is why first builds saved one
 * (docs/benchmarks.md, tenth session). Here the reordering is a permutation written by the expansion
 * (expand-half.ts), and the graph is rewritten the way ORT's pass rewrites it: each conv it would take
 * becomes a `com.microsoft.nchwc` Conv over a blocked filter (OIHWBiBo, or OIHWBo where the input has
 * fewer channels than a block and stays NCHW), its input reordered by a `ReorderInput` shared per
 * tensor, an Add of two NCHWc tensors of provably equal shape fused into the conv that feeds it (the
 * conv accumulates into the sum) or done on the blocked tensors, and a `ReorderOutput` wherever a
 * tensor in blocks meets a node that reads NCHW. Same kernels, same order of operations: the outputs
 * are ORT's bits (tests compare them with ORT's own pass).
 *
 * ORT runs its layout pass after its fusions (Conv+activation, Conv+Add of a constant, BatchNorm,
 * QuickGelu…), and some of those would change what the pass sees; where a graph holds such a case, or
 * a node ORT's pass would also move into blocks (pools, activations, Mul, Concat, Resize, Transpose
 * of a blocked tensor), the rewrite declines the whole graph and says why, and ORT does it as before.
 */

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

/** A conv filter the expansion writes blocked (`name`) from the build's tensor `from`. */
export interface NchwcFilter {
  readonly from: string;
  readonly name: string;
  readonly layout: 'OIHWBiBo' | 'OIHWBo';
  /** The filter's own dims [O, I, KH, KW]; the blocked one has O rounded up to the block. */
  readonly dims: readonly [number, number, number, number];
}

export interface NchwcRewrite {
  readonly block: number;
  readonly filters: readonly NchwcFilter[];
  readonly convs: number;
  /** Adds fused into the conv before them / done on blocked tensors. */
  readonly fusedAdds: number;
  readonly blockedAdds: number;
}

/** What the rewrite needs of an initializer beyond the graph: whether the expansion writes it (external data). */
export interface InitializerAccess {
  isExternal(t: Tensor): boolean;
  /** The float32 values of an inline tensor (a bias to zero-pad), undefined where it cannot read them. */
  floats(t: Tensor): Float32Array | undefined;
}

const FLOAT = 1;
const INT64 = 7;
/** Ops ORT fuses into a preceding conv (ConvActivationFusion) before its layout pass sees the conv. */
const FUSED_ACTIVATIONS = new Set([
  'Relu',
  'Sigmoid',
  'Tanh',
  'LeakyRelu',
  'Clip',
  'HardSigmoid',
  'HardSwish',
  'Elu',
  'Selu',
  'Softplus',
  'Softsign',
  'ThresholdedRelu',
]);
/** Ops whose constant second input ORT folds into a conv before (ConvAdd/ConvMul/ConvBN fusions). */
const FOLDED_INTO_CONV = new Set(['Add', 'Mul', 'Sub', 'Div', 'BatchNormalization']);
/** Ops ORT's pass would move into blocks when their inputs are blocked: not done here, so such a graph is declined. */
const DECLINED_WITH_BLOCKED_INPUT = new Set([
  'Mul',
  'Concat',
  'Relu',
  'Sigmoid',
  'Tanh',
  'BatchNormalization',
  'Transpose',
  'GlobalMaxPool',
  'GlobalAveragePool',
]);

function attrInts(n: Node, name: string): number[] | undefined {
  const a = n.attribute?.find((x) => x.name === name);
  return a?.ints && a.ints.length > 0 ? a.ints.map(Number) : undefined;
}
function attrInt(n: Node, name: string): number | undefined {
  const a = n.attribute?.find((x) => x.name === name);
  return a && a.i !== undefined && a.i !== null ? Number(a.i) : undefined;
}
function attrString(n: Node, name: string): string | undefined {
  const a = n.attribute?.find((x) => x.name === name);
  return a?.s && a.s.length > 0 ? Buffer.from(a.s).toString() : undefined;
}
const isOnnx = (n: Node): boolean => !n.domain || n.domain === 'ai.onnx';

/**
 * Symbolic shape of a blocked tensor as ORT's pass tracks it: each dim is named by the value it was
 * last derived from, spatial dims with how often a stride of 2 halved them.
 */
interface Shape {
  readonly dims: readonly [string, string, string, string];
  readonly shifts: readonly [number, number];
}

interface Blocked {
  /** The node (in the new list) producing the blocked tensor. */
  readonly producer: Node;
  readonly name: string;
  readonly startingUses: number;
  remainingUses: number;
  readonly channels: number;
  readonly shape: Shape;
}

/** A dim as ONNX shape inference knows it: a value, a parameter name, or nothing. */
type KnownDim = { value: number } | { param: string } | undefined;

/**
 * Rewrites `graph` (in place, only when the whole rewrite applies) for MLAS's NCHWc block of `block`
 * channels; returns what the expansion must write, or why the graph was left as it is.
 */
export function rewriteNchwc(graph: Graph, block: number, access: InitializerAccess): NchwcRewrite | { declined: string } {
  if (block < 2) return { declined: 'this CPU has no NCHWc kernels' };
  const nodes = graph.node ?? [];
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const consumers = new Map<string, Node[]>();
  for (const n of nodes)
    for (const i of n.input ?? []) {
      if (!i) continue;
      const list = consumers.get(i);
      if (list) list.push(n);
      else consumers.set(i, [n]);
    }
  const knownOrNot = knownDims(graph, inits);
  if (!knownOrNot) return { declined: 'an input has a fixed height or width (ORT would know shapes this rewrite does not track)' };

  const known = knownOrNot;
  // Cases where ORT's earlier fusions change what its layout pass sees.
  for (const n of nodes) {
    if (!isOnnx(n) && n.opType === 'FusedConv') return { declined: 'the graph holds a FusedConv' };
    if (!isOnnx(n) || n.opType !== 'Conv') continue;
    const users = consumers.get(n.output?.[0] ?? '') ?? [];
    if (users.length === 1 && isOnnx(users[0]) && FUSED_ACTIVATIONS.has(users[0].opType ?? ''))
      return { declined: `conv ${n.name} feeds a ${users[0].opType} alone (ORT fuses it first)` };
    for (const u of users) {
      if (!isOnnx(u) || !FOLDED_INTO_CONV.has(u.opType ?? '')) continue;
      const other = (u.input ?? []).find((i) => i !== n.output?.[0]);
      if (u.opType === 'BatchNormalization' || (other !== undefined && inits.has(other)))
        return { declined: `conv ${n.name} feeds a ${u.opType} with a constant (ORT folds it first)` };
    }
  }

  const out: Node[] = [];
  const added: Tensor[] = [];
  const filters: NchwcFilter[] = [];
  const filterOf = new Map<string, string>();
  const paddedBias = new Map<string, string>();
  const reorderInputs = new Map<string, string>();
  const blocked = new Map<string, Blocked>();
  const reshapeShapes = new Map<string, string>();
  let serial = 0;
  const fresh = (stem: string): string => {
    let name: string;
    do name = `nchwc_${stem}_${serial++}`;
    while (inits.has(name) || consumers.has(name));
    return name;
  };
  const usesOf = (value: string): number =>
    (consumers.get(value) ?? []).reduce((s, u) => s + (u.input ?? []).filter((i) => i === value).length, 0) +
    (graphOutputs.has(value) ? 1 : 0);
  let convs = 0;
  let fusedAdds = 0;
  let blockedAdds = 0;

  const toBlocked = (original: string, producer: Node, channels: number, shape: Shape): void => {
    const name = fresh('reorder');
    producer.output = [name, ...(producer.output ?? []).slice(1)];
    const uses = usesOf(original);
    blocked.set(original, { producer, name, startingUses: uses, remainingUses: uses, channels, shape });
  };
  const reorderInput = (value: string): string => {
    let r = reorderInputs.get(value);
    if (r === undefined) {
      r = fresh('reorder');
      reorderInputs.set(value, r);
      out.push({ opType: 'ReorderInput', domain: NCHWC_DOMAIN, input: [value], output: [r], name: fresh('ReorderInput'), attribute: [] });
    }
    return r;
  };
  const ownShape = (value: string): Shape => ({ dims: [value, value, value, value], shifts: [0, 0] });

  for (const node of nodes) {
    const op = node.opType ?? '';
    const inputs = node.input ?? [];
    if (isOnnx(node) && op === 'Conv') {
      const done = convert(node);
      if (typeof done === 'string') return { declined: done };
      if (done) continue;
    } else if (isOnnx(node) && (op === 'Add' || op === 'Sum') && inputs.length > 0 && inputs.every((i) => blocked.has(i))) {
      const done = add(node);
      if (typeof done === 'string') return { declined: done };
      if (done) continue;
    } else if (isOnnx(node) && (op === 'Resize' || op === 'Upsample') && blocked.has(inputs[0] ?? '')) {
      if (resize(node)) continue;
    } else if (inputs.some((i) => blocked.has(i))) {
      const pools = op === 'MaxPool' || op === 'AveragePool';
      if (
        isOnnx(node) &&
        (pools || (DECLINED_WITH_BLOCKED_INPUT.has(op) && inputs.every((i) => blocked.has(i) || inits.has(i) || i === '')))
      )
        return { declined: `ORT would also move ${op} ${node.name} into blocks` };
    } else if (isOnnx(node) && (op === 'MaxPool' || op === 'AveragePool'))
      return { declined: `ORT would move ${op} ${node.name} into blocks` };
    out.push(node);
  }

  // A ReorderOutput back to NCHW for each blocked tensor still read as NCHW, placed after its producer.
  const finals = new Map<Node, Node[]>();
  for (const [original, b] of blocked) {
    if (b.remainingUses <= 0) continue;
    finals.set(b.producer, [
      ...(finals.get(b.producer) ?? []),
      {
        opType: 'ReorderOutput',
        domain: NCHWC_DOMAIN,
        input: [b.name],
        output: [original],
        name: fresh('ReorderOutput'),
        attribute: [
          { name: 'channels', type: onnxProto.onnx.AttributeProto.AttributeType.INT, i: b.channels },
          { name: 'channels_last', type: onnxProto.onnx.AttributeProto.AttributeType.INT, i: 0 },
        ],
      },
    ]);
  }
  if (convs === 0) return { block, filters, convs, fusedAdds, blockedAdds };
  graph.node = topological(out.flatMap((n) => [n, ...(finals.get(n) ?? [])]));
  graph.initializer = [...(graph.initializer ?? []), ...added];
  const stillUsed = new Set(graph.node.flatMap((n) => n.input ?? []));
  graph.initializer = graph.initializer.filter((t) => stillUsed.has(t.name ?? '') || graphOutputs.has(t.name ?? ''));
  return { block, filters, convs, fusedAdds, blockedAdds };

  /** TransformConv: true when done, false when ORT would leave the conv, a string to decline the graph. */
  function convert(node: Node): boolean | string {
    const inputs = node.input ?? [];
    const w = inits.get(inputs[1] ?? '');
    if (!w || w.dataType !== FLOAT || (w.dims ?? []).length !== 4) return false;
    const [o, i, kh, kw] = (w.dims ?? []).map(Number) as [number, number, number, number];
    const group = attrInt(node, 'group') ?? 1;
    const paddedO = Math.ceil(o / block) * block;
    let layout: NchwcFilter['layout'] = 'OIHWBiBo';
    let reorder = true;
    if (group > 1) {
      if (o % block !== 0) return false;
      if (i === 1 && o === group) layout = 'OIHWBo';
      else if (i % block !== 0 || o % group !== 0 || (o / group) % block !== 0) return false;
    } else if (i < block) {
      layout = 'OIHWBo';
      reorder = false;
    } else if (i % block !== 0) return false;
    let bias: Tensor | undefined;
    if (inputs.length >= 3 && inputs[2]) {
      bias = inits.get(inputs[2]);
      if (!bias || bias.dataType !== FLOAT || (bias.dims ?? []).length !== 1 || Number(bias.dims?.[0]) !== o) return false;
    }
    const key = `${layout}:${w.name}`;
    let filter = filterOf.get(key);
    if (filter === undefined) {
      filter = fresh('filter');
      filterOf.set(key, filter);
      if (access.isExternal(w)) {
        filters.push({ from: w.name ?? '', name: filter, layout, dims: [o, i, kh, kw] });
        added.push({ name: filter, dataType: FLOAT, dims: [paddedO, i, kh, kw] });
      } else {
        // A small filter stored in the graph itself is blocked here.
        const values = access.floats(w);
        if (!values) return `conv ${node.name}'s filter cannot be read`;
        const into = reorderFilter(values, [o, i, kh, kw], layout, block, new Float32Array(paddedO * i * kh * kw));
        added.push({ name: filter, dataType: FLOAT, dims: [paddedO, i, kh, kw], rawData: new Uint8Array(into.buffer) });
      }
    }
    let biasName = inputs[2] ?? '';
    if (bias && o !== paddedO) {
      const had = paddedBias.get(bias.name ?? '');
      if (had !== undefined) biasName = had;
      else {
        const values = access.floats(bias);
        if (!values) return `conv ${node.name}'s bias needs padding and is not stored inline`;
        const padded = new Float32Array(paddedO);
        padded.set(values);
        biasName = fresh('bias');
        paddedBias.set(bias.name ?? '', biasName);
        added.push({ name: biasName, dataType: FLOAT, dims: [paddedO], rawData: new Uint8Array(padded.buffer) });
      }
    }
    let x = inputs[0] ?? '';
    let shape = ownShape(node.output?.[0] ?? '');
    if (reorder) {
      const b = blocked.get(x);
      if (b) {
        b.remainingUses--;
        shape = convShape(node, b.shape, shape, [kh, kw]);
        x = b.name;
      } else x = reorderInput(x);
    }
    const conv: Node = {
      opType: 'Conv',
      domain: NCHWC_DOMAIN,
      name: `${node.output?.[0]}_nchwc`,
      input: [x, filter, ...(inputs.length >= 3 ? [biasName] : [])],
      output: [...(node.output ?? [])],
      attribute: node.attribute ?? [],
    };
    out.push(conv);
    toBlocked(node.output?.[0] ?? '', conv, o, shape);
    convs++;
    return true;
  }

  /** TransformBinary for Add/Sum (its shape test, its fusion into a conv, or the blocked sum). */
  function add(node: Node): boolean | string {
    const inputs = node.input ?? [];
    const bs = inputs.map((i) => blocked.get(i) as Blocked);
    const channels = bs[0].channels;
    if (bs.some((b) => b.channels !== channels)) return false;
    let match = true;
    for (let n = 1; n < bs.length && match; n++)
      for (let d = 0; d < 4; d++) {
        if (sameDim(bs[0].shape, bs[n].shape, d)) continue;
        const a = known.get(inputs[0])?.[d];
        const b = known.get(inputs[n])?.[d];
        const value = a && 'value' in a && b && 'value' in b && a.value > 0 && a.value === b.value;
        const param = a && 'param' in a && b && 'param' in b && a.param === b.param;
        if (!value && !param) match = false;
      }
    if (!match) {
      // ORT reshapes both to [N, C/B, H, W, B] and back (the add itself is the same elementwise sum).
      const padded = Math.ceil(channels / block) * block;
      const split = shapeConst(`split${padded}`, [0, padded / block, 0, 0, block]);
      const unsplit = shapeConst(`unsplit${padded}`, [0, padded, 0, 0]);
      const parts = bs.map((b) => {
        b.remainingUses--;
        const r = fresh('reshape');
        out.push({ opType: 'Reshape', domain: '', input: [b.name, split], output: [r], name: fresh('Reshape'), attribute: [] });
        return r;
      });
      const summed = fresh('reshape');
      out.push({ ...node, input: parts, output: [summed] });
      const back: Node = {
        opType: 'Reshape',
        domain: '',
        input: [summed, unsplit],
        output: [node.output?.[0] ?? ''],
        name: fresh('Reshape'),
        attribute: [],
      };
      out.push(back);
      toBlocked(node.output?.[0] ?? '', back, channels, ownShape(node.output?.[0] ?? ''));
      blockedAdds++;
      return true;
    }
    for (const b of bs) b.remainingUses--;
    if (inputs.length === 2)
      for (let n = 0; n < 2; n++) {
        const c = bs[n].producer;
        if (
          c.opType === 'Conv' &&
          c.domain === NCHWC_DOMAIN &&
          (c.input ?? []).length < 4 &&
          bs[n].startingUses === 1 &&
          !c.attribute?.some((a) => a.name === 'activation')
        ) {
          const ins = [...(c.input ?? [])];
          while (ins.length < 3) ins.push('');
          c.input = [...ins, bs[n ^ 1].producer.output?.[0] ?? ''];
          // The sum's result is the conv's blocked output from here on.
          blocked.set(node.output?.[0] ?? '', {
            producer: c,
            name: c.output?.[0] ?? '',
            startingUses: usesOf(node.output?.[0] ?? ''),
            remainingUses: usesOf(node.output?.[0] ?? ''),
            channels: bs[n].channels,
            shape: bs[n].shape,
          });
          fusedAdds++;
          return true;
        }
      }
    const sum: Node = { ...node, input: bs.map((b) => b.name) };
    out.push(sum);
    toBlocked(node.output?.[0] ?? '', sum, channels, bs[0].shape);
    blockedAdds++;
    return true;
  }

  /** TransformResize: a nearest, integer, spatial-only upscale of a blocked tensor as an NCHWc Upsample. */
  function resize(node: Node): boolean {
    const inputs = node.input ?? [];
    const mode = attrString(node, 'mode');
    if (mode !== undefined && mode !== 'nearest') return false;
    let scalesName: string;
    if (node.opType === 'Resize') {
      // Opset 11 and later (the graphs here are opset 17): scales as the third input, no sizes.
      if (inputs.length !== 3) return false;
      scalesName = inputs[2];
      if (attrString(node, 'coordinate_transformation_mode') !== 'asymmetric' || attrString(node, 'nearest_mode') !== 'floor') return false;
    } else scalesName = inputs[1] ?? '';
    const t = inits.get(scalesName);
    if (!t || t.dataType !== FLOAT || (t.dims ?? []).length !== 1 || Number(t.dims?.[0]) !== 4) return false;
    const values = access.floats(t);
    if (!values) return false;
    const scales = [...values].map((v) => Math.trunc(v));
    if (scales.some((v, n) => v <= 0 || Math.fround(v) !== values[n]) || scales[0] !== 1 || scales[1] !== 1) return false;
    const b = blocked.get(inputs[0]) as Blocked;
    b.remainingUses--;
    const up: Node = {
      opType: 'Upsample',
      domain: NCHWC_DOMAIN,
      name: `${node.output?.[0]}_nchwc`,
      input: [b.name],
      output: [...(node.output ?? [])],
      attribute: [{ name: 'scales', type: onnxProto.onnx.AttributeProto.AttributeType.INTS, ints: scales }],
    };
    out.push(up);
    toBlocked(node.output?.[0] ?? '', up, b.channels, ownShape(node.output?.[0] ?? ''));
    return true;
  }

  function shapeConst(key: string, values: number[]): string {
    let name = reshapeShapes.get(key);
    if (name === undefined) {
      name = fresh('shape');
      reshapeShapes.set(key, name);
      added.push({ name, dataType: INT64, dims: [values.length], rawData: new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer) });
    }
    return name;
  }
}

function sameDim(a: Shape, b: Shape, d: number): boolean {
  if (a.dims[d] !== b.dims[d]) return false;
  return d < 2 || a.shifts[d - 2] === b.shifts[d - 2];
}

/** ConvPoolShapeInference: which dims of the output are provably its blocked input's. */
function convShape(node: Node, input: Shape, own: Shape, kernel: readonly [number, number]): Shape {
  const dims: [string, string, string, string] = [input.dims[0], own.dims[1], own.dims[2], own.dims[3]];
  const shifts: [number, number] = [0, 0];
  const pads = attrInts(node, 'pads');
  const strides = attrInts(node, 'strides');
  const dilations = attrInts(node, 'dilations');
  if ((pads && pads.length !== 4) || (strides && strides.length !== 2) || (dilations && dilations.length !== 2)) return { dims, shifts };
  const autoPad = attrString(node, 'auto_pad');
  let same = false;
  let usePads = pads;
  if (autoPad !== undefined && autoPad !== 'NOTSET') {
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') same = true;
    else if (autoPad !== 'VALID') return { dims, shifts };
    usePads = undefined;
  }
  for (let i = 0; i < 2; i++) {
    if (dilations && dilations[i] !== 1) continue;
    const stride = strides ? strides[i] : 1;
    if (stride !== 1 && stride !== 2) continue;
    const padding = usePads ? usePads[i] + usePads[i + 2] : 0;
    if (padding + 1 === kernel[i] || same) {
      dims[2 + i] = input.dims[2 + i];
      shifts[i] = input.shifts[i] + stride - 1;
    }
  }
  return { dims, shifts };
}

/**
 * The dims ONNX shape inference gives the values this rewrite asks about, for graphs whose 4-D inputs
 * have symbolic height and width: a conv output keeps its input's batch dim and has its filter's
 * channels, and its height and width are unknown (computed from unknowns); elementwise ops keep equal
 * dims. Undefined when an input fixes its height or width (ORT would then know spatial dims).
 */
function knownDims(graph: Graph, inits: ReadonlyMap<string, Tensor>): Map<string, KnownDim[]> | undefined {
  const known = new Map<string, KnownDim[]>();
  for (const v of graph.input ?? []) {
    const dims = (v.type?.tensorType?.shape?.dim ?? []).map((d): KnownDim => {
      if (d.dimParam) return { param: d.dimParam };
      if (d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0) return { value: Number(d.dimValue) };
      return undefined;
    });
    if (dims.length === 4 && ((dims[2] && 'value' in dims[2]) || (dims[3] && 'value' in dims[3]))) return undefined;
    known.set(v.name ?? '', dims);
  }
  for (const n of graph.node ?? []) {
    const first = known.get(n.input?.[0] ?? '');
    const outName = n.output?.[0] ?? '';
    if (!isOnnx(n) || !first) continue;
    if (n.opType === 'Conv') {
      const w = inits.get(n.input?.[1] ?? '');
      const o = w?.dims?.[0];
      known.set(outName, [first[0], o === undefined ? undefined : { value: Number(o) }, undefined, undefined]);
    } else if (['Sigmoid', 'Relu', 'Tanh', 'Identity', 'InstanceNormalization', 'Softmax'].includes(n.opType ?? '')) {
      known.set(outName, first);
    } else if (['Add', 'Sub', 'Mul', 'Div'].includes(n.opType ?? '')) {
      const second = known.get(n.input?.[1] ?? '');
      if (!second || second.length !== first.length) continue;
      known.set(
        outName,
        first.map((a, d) => {
          const b = second[d];
          if (a && b && 'value' in a && 'value' in b) return a.value === b.value ? a : a.value === 1 ? b : b.value === 1 ? a : undefined;
          if (a && b && 'param' in a && 'param' in b && a.param === b.param) return a;
          return undefined;
        }),
      );
    }
  }
  return known;
}

/** Kahn's order, keeping the given order among ready nodes (ReorderOutputs go right after what they read). */
function topological(nodes: Node[]): Node[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => producer.set(o, i)));
  const waiting = nodes.map((n) => new Set((n.input ?? []).map((i) => producer.get(i)).filter((p): p is number => p !== undefined)).size);
  const dependents = nodes.map(() => [] as number[]);
  nodes.forEach((n, i) => {
    for (const p of new Set((n.input ?? []).map((x) => producer.get(x)).filter((q): q is number => q !== undefined))) dependents[p].push(i);
  });
  const ready: number[] = [];
  waiting.forEach((w, i) => w === 0 && ready.push(i));
  const order: Node[] = [];
  // A min-heap would do; the graphs are a few thousand nodes and `ready` stays short.
  while (ready.length > 0) {
    let k = 0;
    for (let j = 1; j < ready.length; j++) if (ready[j] < ready[k]) k = j;
    const i = ready.splice(k, 1)[0];
    order.push(nodes[i]);
    for (const d of dependents[i]) if (--waiting[d] === 0) ready.push(d);
  }
  if (order.length !== nodes.length) throw new Error('the NCHWc rewrite made a cycle (a bug)');
  return order;
}

/**
 * MLAS's blocked filter layouts, from the filter's [O, I, KH, KW] values, written in order with zeros
 * where O is padded up to the block: OIHWBiBo is [O/B][I/B][KH·KW][Bi][Bo], OIHWBo [O/B][I][KH·KW][Bo].
 * With `table`, `src` holds float16 bits and `into` gets each one's float32 bits (the expansion's
 * widening, done in the same pass: ~1.8× faster than widening first).
 */
export function reorderFilter<T extends Float32Array | Uint32Array>(
  src: Float32Array | Uint32Array | Uint16Array,
  dims: readonly [number, number, number, number],
  layout: NchwcFilter['layout'],
  block: number,
  into: T,
  table?: Uint32Array,
): T {
  const [o, i, kh, kw] = dims;
  const k = kh * kw;
  const row = i * k;
  const blocksO = Math.ceil(o / block);
  // The source index steps by a row per output channel of the block; the output is written in order.
  const step = layout === 'OIHWBo' ? 1 : block;
  const groups = layout === 'OIHWBo' ? i : i / block;
  let d = 0;
  for (let ob = 0; ob < blocksO; ob++) {
    const rows = Math.min(block, o - ob * block);
    for (let g = 0; g < groups; g++)
      for (let x = 0; x < k; x++)
        for (let c = 0; c < step; c++) {
          let at = ob * block * row + (g * step + c) * k + x;
          if (table) for (let bo = 0; bo < rows; bo++, at += row) into[d++] = table[src[at]];
          else for (let bo = 0; bo < rows; bo++, at += row) into[d++] = src[at];
          for (let bo = rows; bo < block; bo++) into[d++] = 0;
        }
  }
  return into;
}
