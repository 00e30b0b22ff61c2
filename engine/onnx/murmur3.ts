/**
 * MurmurHash3, x86 128-bit variant (Austin Appleby's public-domain reference), as ORT hashes a
 * kernel's pre-packed buffers to key them (prepack-keys.ts). Returns the four 32-bit words h1..h4.
 * Little-endian reads, as on every platform ORT's CPU packing runs here. Self-contained on purpose
 * (no imports, no nested functions): prepack-keys.ts runs this very function in a worker from its source text.
 */
export function murmur3x86_128(data: Uint8Array, seed: number): [number, number, number, number] {
  const len = data.byteLength;
  const blocks = len >>> 4;
  let h1 = seed | 0;
  let h2 = seed | 0;
  let h3 = seed | 0;
  let h4 = seed | 0;
  const C1 = 0x239b961b;
  const C2 = 0xab0e9789;
  const C3 = 0x38b34ae5;
  const C4 = 0xa1e38b93;
  // Aligned input is read as 32-bit words in place; otherwise through a DataView (same values).
  const aligned = data.byteOffset % 4 === 0;
  const w = aligned ? new Uint32Array(data.buffer, data.byteOffset, blocks * 4) : undefined;
  const view = aligned ? undefined : new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0, j = 0; i < blocks; i++, j += 4) {
    let k1 = w ? w[j] : view!.getUint32(4 * j, true);
    let k2 = w ? w[j + 1] : view!.getUint32(4 * j + 4, true);
    let k3 = w ? w[j + 2] : view!.getUint32(4 * j + 8, true);
    let k4 = w ? w[j + 3] : view!.getUint32(4 * j + 12, true);
    k1 = Math.imul(k1, C1);
    k1 = (k1 << 15) | (k1 >>> 17);
    h1 ^= Math.imul(k1, C2);
    h1 = (h1 << 19) | (h1 >>> 13);
    h1 = (Math.imul(h1 + h2, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(k2, C2);
    k2 = (k2 << 16) | (k2 >>> 16);
    h2 ^= Math.imul(k2, C3);
    h2 = (h2 << 17) | (h2 >>> 15);
    h2 = (Math.imul(h2 + h3, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(k3, C3);
    k3 = (k3 << 17) | (k3 >>> 15);
    h3 ^= Math.imul(k3, C4);
    h3 = (h3 << 15) | (h3 >>> 17);
    h3 = (Math.imul(h3 + h4, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(k4, C4);
    k4 = (k4 << 18) | (k4 >>> 14);
    h4 ^= Math.imul(k4, C1);
    h4 = (h4 << 13) | (h4 >>> 19);
    h4 = (Math.imul(h4 + h1, 5) + 0x32ac3b17) | 0;
  }
  const tail = blocks * 16;
  const rest = len & 15;
  // The last 1-15 bytes, in four little-endian lanes.
  let k1 = 0;
  let k2 = 0;
  let k3 = 0;
  let k4 = 0;
  for (let i = rest - 1; i >= 0; i--) {
    const b = data[tail + i];
    if (i >= 12) k4 = (k4 << 8) | b;
    else if (i >= 8) k3 = (k3 << 8) | b;
    else if (i >= 4) k2 = (k2 << 8) | b;
    else k1 = (k1 << 8) | b;
  }
  if (rest > 12) {
    k4 = Math.imul(k4, C4);
    k4 = (k4 << 18) | (k4 >>> 14);
    h4 ^= Math.imul(k4, C1);
  }
  if (rest > 8) {
    k3 = Math.imul(k3, C3);
    k3 = (k3 << 17) | (k3 >>> 15);
    h3 ^= Math.imul(k3, C4);
  }
  if (rest > 4) {
    k2 = Math.imul(k2, C2);
    k2 = (k2 << 16) | (k2 >>> 16);
    h2 ^= Math.imul(k2, C3);
  }
  if (rest > 0) {
    k1 = Math.imul(k1, C1);
    k1 = (k1 << 15) | (k1 >>> 17);
    h1 ^= Math.imul(k1, C2);
  }
  // The length is an int in the reference: only its low 32 bits take part.
  h1 ^= len;
  h2 ^= len;
  h3 ^= len;
  h4 ^= len;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  // fmix32 of each word, written out (no nested functions, see above).
  const out = [h1, h2, h3, h4];
  for (let i = 0; i < 4; i++) {
    let h = out[i];
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    out[i] = h ^ (h >>> 16);
  }
  h1 = (out[0] + out[1] + out[2] + out[3]) | 0;
  return [h1 >>> 0, (out[1] + h1) >>> 0, (out[2] + h1) >>> 0, (out[3] + h1) >>> 0];
}
