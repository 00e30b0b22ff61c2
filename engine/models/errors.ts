/** A recognised model family that Weft cannot run yet. */
export class UnsupportedModelError extends Error {
  constructor(
    readonly family: string,
    detail = '',
  ) {
    super(`not supported yet: detected ${family}${detail ? ` (${detail})` : ''}; Weft runs SD1.x, SD2.x and SDXL checkpoints for now`);
    this.name = 'UnsupportedModelError';
  }
}
