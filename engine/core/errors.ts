/** Thrown where long work notices its abort signal; the executor reports it as ComfyUI's interruption, not as a failure. */
export class InterruptedError extends Error {
  constructor(message = 'Processing interrupted') {
    super(message);
    this.name = 'InterruptedError';
  }
}
