/**
 * The float32 frequencies of LDM's `timestep_embedding` (f_i = exp(−ln(maxPeriod)·i/half)), computed in float32
 * like torch: the UNet graph stores them and the reference net uses them, so both agree to the ulp.
 */
export function timestepFrequencies(dim: number, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const f = new Float32Array(half);
  const negLog = Math.fround(-Math.log(maxPeriod));
  for (let i = 0; i < half; i++) f[i] = Math.exp(Math.fround(Math.fround(negLog * i) / half));
  return f;
}
