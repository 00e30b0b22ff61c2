import type { ImageTensor } from '../../core/tensor.ts';
import { nchwToNhwc, nhwcToNchw } from '../../image/layout.ts';
import { pilLanczos } from '../../image/pil-lanczos.ts';

/**
 * The Impact Pack's `tensor_resize` for RGB images: each image through an 8-bit PIL image (values
 * truncated to bytes, as `tensor2pil` does) and PIL's LANCZOS, back to 0..1. It quantises even at
 * the same size, which matters for bit-exact comparisons.
 */
export function lanczosImage(image: ImageTensor, width: number, height: number): ImageTensor {
  return nchwToNhwc(pilLanczos(nhwcToNchw(image), height, width));
}
