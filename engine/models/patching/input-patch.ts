import type { LayerHook, Net } from '../../onnx/nn.ts';

/**
 * Patches that change what a layer reads rather than its weight: ComfyUI's attn1/attn2 patches that
 * replace the k and v inputs of attention (a hypernetwork's `k + h_k(k)·strength`). They ride in the
 * patch lists of the weights whose layer they feed (so LoraLoader-style stacking, handle ids and
 * patched builds need nothing new), never change a weight's value, and reach the graph as a layer
 * hook whose strength is a graph input, like a LoRA branch's.
 */
export interface LayerInputPatch {
  /** Initializer prefix for the patch's constants (no '.'); equal ids ⇒ equal constants. */
  readonly id: string;
  /** Content hash of the file the patch comes from: its constants are stored in one file per source. */
  readonly source: string;
  /** Identity of the computation (file, module), for graph structure keys and sharing between layers. */
  readonly sig: string;
  /** Nodes computing the new input from `x` (last axis = the layer's input width); `strength` is a [1] value in the graph's precision. */
  apply(net: Net, x: string, strength: string): string;
}

/** One input patch on one layer, with the graph input that carries its strength. */
export interface InputBranch {
  readonly patch: LayerInputPatch;
  readonly strengthInput: string;
}

/**
 * The hook that applies `inputs` (by bare layer key, the weight's key without `.weight`) in order to
 * the value each layer reads. Layers that read the same value through the same chain (every attn2
 * reads the one text context) share one computation.
 */
export function inputPatchHook(inputs: ReadonlyMap<string, readonly InputBranch[]>): LayerHook {
  const perNet = new WeakMap<Net, { strengths: Map<string, string>; done: Map<string, string> }>();
  const state = (n: Net): { strengths: Map<string, string>; done: Map<string, string> } => {
    let s = perNet.get(n);
    if (!s) perNet.set(n, (s = { strengths: new Map(), done: new Map() }));
    return s;
  };
  return {
    touches: (key) => inputs.has(key),
    layer: () => undefined,
    input(n, { key, input }) {
      const list = inputs.get(key);
      if (!list?.length) return undefined;
      const s = state(n);
      let x = input;
      for (const b of list) {
        const memo = `${x}|${b.patch.sig}|${b.strengthInput}`;
        const done = s.done.get(memo);
        if (done) {
          x = done;
          continue;
        }
        let strength = s.strengths.get(b.strengthInput);
        if (!strength) {
          n.g.input(b.strengthInput, 'float32', [1]);
          strength = n.dtype === 'float16' ? n.cast(b.strengthInput, 'float16') : b.strengthInput;
          s.strengths.set(b.strengthInput, strength);
        }
        const y = b.patch.apply(n, x, strength);
        s.done.set(memo, y);
        x = y;
      }
      return x;
    },
  };
}
