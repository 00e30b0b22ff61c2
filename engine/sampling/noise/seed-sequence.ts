/**
 * numpy's `np.random.SeedSequence(entropy, spawn_key, pool_size).generate_state(n)` (uint32 words).
 *
 * torchsde derives every Brownian-tree node's seeds this way, so the tree can only be reproduced if
 * this hash matches numpy word for word. All arithmetic is mod 2^32, hence Math.imul and >>> 0.
 */

const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const XSHIFT = 16;

/** numpy splits a non-negative int into 32-bit words, least significant first; 0 is one zero word. */
function intToWords(v: bigint): number[] {
  if (v < 0n) throw new Error('SeedSequence: entropy must be non-negative');
  if (v === 0n) return [0];
  const out: number[] = [];
  while (v > 0n) {
    out.push(Number(v & 0xffffffffn));
    v >>= 32n;
  }
  return out;
}

function mix(x: number, y: number): number {
  let r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
  r = (r ^ (r >>> XSHIFT)) >>> 0;
  return r;
}

export class SeedSequence {
  private readonly pool: Uint32Array;

  constructor(entropy: bigint, spawnKey: readonly bigint[] = [], poolSize = 4) {
    let run = intToWords(entropy);
    const spawn = spawnKey.flatMap(intToWords);
    // numpy pads the run entropy to the pool size whenever a spawn key follows, so a child's key
    // words can never alias entropy words of a different root.
    if (spawn.length > 0 && run.length < poolSize) run = run.concat(new Array<number>(poolSize - run.length).fill(0));
    this.pool = this.mixEntropy(run.concat(spawn), poolSize);
  }

  private mixEntropy(entropy: readonly number[], poolSize: number): Uint32Array {
    let hashConst = INIT_A;
    const hashmix = (value: number): number => {
      let v = (value ^ hashConst) >>> 0;
      hashConst = Math.imul(hashConst, MULT_A) >>> 0;
      v = Math.imul(v, hashConst) >>> 0;
      return (v ^ (v >>> XSHIFT)) >>> 0;
    };
    const mixer = new Uint32Array(poolSize);
    for (let i = 0; i < poolSize; i++) mixer[i] = hashmix(i < entropy.length ? entropy[i] : 0);
    for (let src = 0; src < poolSize; src++) {
      for (let dst = 0; dst < poolSize; dst++) {
        if (src !== dst) mixer[dst] = mix(mixer[dst], hashmix(mixer[src]));
      }
    }
    for (let src = poolSize; src < entropy.length; src++) {
      for (let dst = 0; dst < poolSize; dst++) mixer[dst] = mix(mixer[dst], hashmix(entropy[src]));
    }
    return mixer;
  }

  generateState(nWords: number): Uint32Array {
    let hashConst = INIT_B;
    const out = new Uint32Array(nWords);
    for (let i = 0; i < nWords; i++) {
      let v = (this.pool[i % this.pool.length] ^ hashConst) >>> 0;
      hashConst = Math.imul(hashConst, MULT_B) >>> 0;
      v = Math.imul(v, hashConst) >>> 0;
      out[i] = (v ^ (v >>> XSHIFT)) >>> 0;
    }
    return out;
  }
}
