/**
 * ComfyUI's Brownian-tree noise sampler for SDE samplers: k-diffusion's `BrownianTreeNoiseSampler`
 * (cpu=True) over torchsde's `BrownianTree`, i.e. a `BrownianInterval` with halfway_tree=True,
 * tol=1e-6, pool_size=24, entropy=seed, no Levy area.
 *
 * What is reproduced, step by step (torchsde 0.2.5/0.2.6, unchanged since 2021):
 * - times are float32 sigmas widened to double, then quantised with Python's round(x, 6);
 * - the root increment is torch.randn(shape, seed=s0) * sqrt(t1 - t0), with s0 the first word of
 *   numpy SeedSequence(entropy=seed, pool_size=24).generate_state(3);
 * - every node splits at the rounded midpoint of its ends; its noise seed is word 0 of
 *   SeedSequence(entropy=seed, spawn_key=(key, depth), pool_size=24).generate_state(4), where the
 *   root has key 0 / depth 0 and children take 2*key + (0 left, 1 right), depth + 1;
 * - a left child's increment is left/h * W + sqrt(left*right/h) * randn(parent seed) (Brownian
 *   bridge), the right child's is W minus that, all in float32 as torch evaluates it;
 * - a query [ta, tb] is the left-to-right float32 sum over the maximal tree nodes covering it, then
 *   k-diffusion multiplies by the sort sign and divides by sqrt(|t1 - t0|) in float32.
 * SeedSequence is checked word for word against numpy, randn against torch fixtures, and the whole
 * tree against torchsde's own brownian_interval.py run with a numpy stand-in for torch (identical
 * for latents under 16 elements, within 4e-7 above). The remaining gap to ComfyUI is torch's AVX2
 * randn kernel, which differs from the scalar formula used here by ~1e-6 per draw, accumulated over
 * the ~20-30 bridge levels a query descends. Not reproduced: Levy area (ComfyUI never asks for it)
 * and per-batch-item seed lists. A zero-length step gives 0/0 = NaN, as in ComfyUI.
 * Because the tree is dyadic and seeds depend only on a node's position, results do not depend on
 * query order or on what is cached, as in torchsde's halfway tree.
 */

import type { NoiseSampler } from '../samplers/types.ts';
import { SeedSequence } from './seed-sequence.ts';
import { torchRandn } from './torch-randn.ts';

const POOL_SIZE = 24;
const CACHE_SIZE = 128;
const MAX_DEPTH = 200;
const f32 = Math.fround;

/** Python's round(x, 6): correctly rounded, ties to even on the exact binary value. */
export function pyRound6(x: number): number {
  if (!Number.isFinite(x) || Math.abs(x) >= 1e21) return x;
  // toFixed also rounds the exact value but breaks exact ties away from zero; only ties differ.
  const s7 = x.toFixed(7);
  if (s7.endsWith('5') && /^-?\d+\.\d{7}0*$/.test(x.toFixed(30))) {
    const truncated = s7.slice(0, -1);
    const lastDigit = truncated.charCodeAt(truncated.length - 1) - 48;
    if (lastDigit % 2 === 0) return Number(truncated);
  }
  return Number(x.toFixed(6));
}

class Node {
  midway: number | null = null;
  left: Node | null = null;
  right: Node | null = null;
  /** Seed of the noise this node uses to split its increment between its children. */
  wSeed = 0;

  constructor(
    readonly start: number,
    readonly end: number,
    readonly parent: Node | null,
    readonly isLeft: boolean,
    readonly spawnKey: bigint,
    readonly depth: number,
  ) {}
}

/** torchsde's BrownianTree increments W(tb) - W(ta) for one entropy, float32, of a fixed shape. */
export class BrownianTree {
  private readonly root: Node;
  private readonly shape: readonly number[];
  private readonly entropy: bigint;
  private readonly rootW: Float32Array;
  private readonly cache = new Map<Node, Float32Array>();

  constructor(t0: number, t1: number, shape: readonly number[], entropy: bigint) {
    if (!(t0 <= t1)) throw new Error(`BrownianTree: t0 ${t0} must not exceed t1 ${t1}`);
    if (entropy < 0n) throw new Error('BrownianTree: entropy must be non-negative');
    this.shape = [...shape];
    this.entropy = entropy;
    this.root = new Node(pyRound6(t0), pyRound6(t1), null, false, 0n, 0);
    this.root.wSeed = this.nodeSeed(this.root);
    const rootSeed = new SeedSequence(entropy, [], POOL_SIZE).generateState(3)[0];
    const w = torchRandn(BigInt(rootSeed), this.shape);
    // torchsde scales by the unrounded span, not the rounded node ends.
    const scale = f32(Math.sqrt(t1 - t0));
    for (let i = 0; i < w.length; i++) w[i] = w[i] * scale;
    this.rootW = w;
  }

  private nodeSeed(node: Node): number {
    // The root's split noise is keyed (0, 0) too, distinct from its own increment's unkeyed seed.
    return new SeedSequence(this.entropy, [node.spawnKey, BigInt(node.depth)], POOL_SIZE).generateState(1)[0];
  }

  private split(node: Node): void {
    const mid = pyRound6(0.5 * (node.end + node.start));
    node.midway = mid;
    node.left = new Node(node.start, mid, node, true, 2n * node.spawnKey, node.depth + 1);
    node.right = new Node(mid, node.end, node, false, 2n * node.spawnKey + 1n, node.depth + 1);
    node.left.wSeed = this.nodeSeed(node.left);
    node.right.wSeed = this.nodeSeed(node.right);
  }

  /** The maximal tree nodes that tile [ta, tb], left to right; splits lazily. */
  private locate(node: Node, ta: number, tb: number, out: Node[], depth = 0): void {
    if (depth > MAX_DEPTH) throw new Error(`BrownianTree: cannot resolve [${ta}, ${tb}]`);
    if (ta === node.start && tb === node.end) {
      out.push(node);
      return;
    }
    if (node.midway === null) this.split(node);
    const mid = node.midway as number;
    const left = node.left as Node;
    const right = node.right as Node;
    if (tb <= mid) this.locate(left, ta, tb, out, depth + 1);
    else if (ta >= mid) this.locate(right, ta, tb, out, depth + 1);
    else {
      this.locate(left, ta, mid, out, depth + 1);
      this.locate(right, mid, tb, out, depth + 1);
    }
  }

  private nodeIncrement(node: Node): Float32Array {
    if (node.parent === null) return this.rootW;
    const hit = this.cache.get(node);
    if (hit !== undefined) {
      this.cache.delete(node);
      this.cache.set(node, hit);
      return hit;
    }
    const parent = node.parent;
    const pw = this.nodeIncrement(parent);
    const mid = parent.midway as number;
    const hRecip = f32(1 / (parent.end - parent.start));
    const leftDiff = f32(mid - parent.start);
    const std = f32(Math.sqrt((mid - parent.start) * (parent.end - mid) * (1 / (parent.end - parent.start))));
    const noise = torchRandn(BigInt(parent.wSeed), this.shape);
    const out = new Float32Array(pw.length);
    for (let i = 0; i < pw.length; i++) {
      const mean = f32(f32(leftDiff * pw[i]) * hRecip);
      const leftW = f32(mean + f32(std * noise[i]));
      out[i] = node.isLeft ? leftW : pw[i] - leftW;
    }
    this.cache.set(node, out);
    if (this.cache.size > CACHE_SIZE) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    return out;
  }

  /** W(tb) - W(ta) for ta <= tb, clamped to the tree's span as torchsde does. */
  increment(ta: number, tb: number): Float32Array {
    const { start, end } = this.root;
    ta = Math.min(Math.max(ta, start), end);
    tb = Math.min(Math.max(tb, start), end);
    if (ta > tb) throw new Error(`BrownianTree: query ta=${ta} > tb=${tb}`);
    const n = this.rootW.length;
    if (ta === tb) return new Float32Array(n);
    const nodes: Node[] = [];
    this.locate(this.root, pyRound6(ta), pyRound6(tb), nodes);
    const w = Float32Array.from(this.nodeIncrement(nodes[0]));
    for (let k = 1; k < nodes.length; k++) {
      const wi = this.nodeIncrement(nodes[k]);
      for (let i = 0; i < n; i++) w[i] += wi[i];
    }
    return w;
  }
}

export interface BrownianOptions {
  /** k-diffusion's `transform` from sigma to tree time; identity by default. */
  readonly transform?: (sigma: number) => number;
}

/**
 * k-diffusion/ComfyUI `BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed, cpu=True)`:
 * (W(t_next) - W(t)) / sqrt(|t_next - t|), standard normal per element for any interval.
 */
export function brownianNoiseSampler(
  seed: bigint,
  shape: readonly number[],
  sigmaMin: number,
  sigmaMax: number,
  options: BrownianOptions = {},
): NoiseSampler {
  const transform = options.transform ?? ((s: number) => s);
  // ComfyUI's sigmas are float32 tensors and the tree is queried with `.float()` times.
  const tf = (s: number): number => f32(transform(f32(s)));
  const a = tf(sigmaMin);
  const b = tf(sigmaMax);
  const treeSign = a < b ? 1 : -1;
  const tree = new BrownianTree(Math.min(a, b), Math.max(a, b), shape, BigInt.asUintN(64, seed));
  return (sigma: number, sigmaNext: number): Float32Array => {
    const t0 = tf(sigma);
    const t1 = tf(sigmaNext);
    const sign = (t0 < t1 ? 1 : -1) * treeSign;
    const w = t0 < t1 ? tree.increment(t0, t1) : tree.increment(t1, t0);
    const scale = f32(Math.sqrt(Math.abs(f32(t1 - t0))));
    for (let i = 0; i < w.length; i++) w[i] = (sign * w[i]) / scale;
    return w;
  };
}
