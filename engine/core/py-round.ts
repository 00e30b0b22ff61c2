/** Python 3 `round(x)`: nearest integer, ties to the even one (ComfyUI computes sizes with it). */
export function pyRound(x: number): number {
  if (!Number.isFinite(x)) throw new Error(`cannot round ${x} to an integer`);
  // Math.round sends ties up; Python sends them to the even neighbour. `|| 0` drops a -0.
  const r = Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : Math.round(x);
  return r || 0;
}
