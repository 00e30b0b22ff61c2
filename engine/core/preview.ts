/** An unencoded RGB preview (the server encodes it to JPEG for ComfyUI's binary preview frame). */
export interface PreviewImage {
  readonly width: number;
  readonly height: number;
  /** width * height * 3 bytes, row-major RGB. */
  readonly rgb: Uint8Array;
}
