import type { StoredTensor, WeightSource } from '../../core/weights.ts';
import { AdapterArchitectureError, checkpointFamilyOf, familyFromKeys, familyFromMismatch } from './family.ts';
import { adapterKeyMap } from './keys.ts';
import { sliceOf } from './keys-openclip.ts';
import { patchResultShape } from './shapes.ts';
import type { AdapterTensor, BlockPatch, SlicesPatch, WeightPatch } from './types.ts';

export { AdapterArchitectureError } from './family.ts';

/**
 * Reading an adapter file (LoRA, LoCon, LoHa, LoKr, IA3, full diff, GLoRA, DoRA) into per-weight
 * patches, the way ComfyUI's load_lora does: every key is split into a stem that names the patched
 * module and a suffix that names the tensor's role, stems are looked up in adapterKeyMap, and the
 * roles present decide the kind. Tensors stay in the file until a patch is applied.
 */


export interface ParsedAdapter {
  file: string;
  patches: WeightPatch[];
  /** Adapter keys that patch nothing in this checkpoint (unknown modules, unknown roles, stray alphas). */
  unmatched: string[];
  /** Keys of a patch that another entry of the same file replaces (ComfyUI keeps only the last per weight). */
  shadowed: string[];
  /** The naming the keys mostly follow: 'kohya', 'peft', 'diffusers', 'comfy', 'lycoris', or 'mixed'. */
  format: string;
}

/** A key stem's tensors by role. */
type Roles = Map<string, string>;

/**
 * Role suffixes, longest first so `.lora_up.weight` wins over `.weight` (IA3's). Spellings per
 * ComfyUI's LoRAAdapter.load: kohya, diffusers (`_lora.up`), PEFT (`lora_A/B`), `.lora.up`,
 * transformers (`lora_linear_layer`), PEFT with an adapter name (`.default`), and bare mochi `lora_A`.
 */
const LORA_SPELLINGS: readonly (readonly [up: string, down: string])[] = [
  ['.lora_up.weight', '.lora_down.weight'],
  ['_lora.up.weight', '_lora.down.weight'],
  ['.lora_B.weight', '.lora_A.weight'],
  ['.lora.up.weight', '.lora.down.weight'],
  ['.lora_B', '.lora_A'],
  ['.lora_linear_layer.up.weight', '.lora_linear_layer.down.weight'],
  ['.lora_B.default.weight', '.lora_A.default.weight'],
];
const OTHER_SUFFIXES = [
  '.lora_mid.weight', '.alpha', '.dora_scale', '.reshape_weight',
  '.hada_w1_a', '.hada_w1_b', '.hada_w2_a', '.hada_w2_b', '.hada_t1', '.hada_t2',
  '.lokr_w1', '.lokr_w1_a', '.lokr_w1_b', '.lokr_w2', '.lokr_w2_a', '.lokr_w2_b', '.lokr_t2',
  '.a1.weight', '.a2.weight', '.b1.weight', '.b2.weight',
  '.w_norm', '.b_norm', '.diff', '.diff_b', '.set_weight',
  '.weight', '.on_input',
];
const SUFFIXES: readonly string[] = [...new Set([...LORA_SPELLINGS.flat(), ...OTHER_SUFFIXES])].sort((a, b) => b.length - a.length);

/** Split a key into a known stem and role suffix; undefined when no split names a mapped module. */
function splitKey(key: string, keyMap: ReadonlyMap<string, string>): { stem: string; suffix: string } | undefined {
  for (const suffix of SUFFIXES) {
    if (key.length > suffix.length && key.endsWith(suffix)) {
      const stem = key.slice(0, -suffix.length);
      if (keyMap.has(stem)) return { stem, suffix };
    }
  }
  return undefined;
}

function formatOf(stem: string, roles: Roles): string {
  if (stem.startsWith('lycoris_')) return 'lycoris';
  if (/^lora_(unet|te1?)_/.test(stem)) return [...roles.keys()].some((s) => s.startsWith('.hada') || s.startsWith('.lokr') || s === '.on_input') ? 'lycoris' : 'kohya';
  if (stem.startsWith('diffusion_model.') || stem.startsWith('text_encoders.') || stem.startsWith('clip_l.')) return 'comfy';
  if (roles.has('.lora_A.weight') || roles.has('.lora_A.default.weight') || stem.startsWith('base_model.model.')) return 'peft';
  return 'diffusers';
}

interface Candidate {
  patch: WeightPatch;
  keys: string[];
}

export function parseAdapter(file: string, adapter: WeightSource, checkpoint: Pick<WeightSource, 'has' | 'shape' | 'names'>): ParsedAdapter {
  const adapterKeys = adapter.names();
  const ckptHas = (n: string): boolean => checkpoint.has(n);
  const ckptFamily = checkpointFamilyOf(ckptHas);
  const byName = familyFromKeys(adapterKeys, ckptHas);
  if (byName) throw new AdapterArchitectureError(file, byName.family, `key '${byName.key}'`, ckptFamily);

  const keyMap = adapterKeyMap(checkpoint.names());
  const groups = new Map<string, Roles>();
  const unmatched: string[] = [];
  for (const key of adapterKeys) {
    const split = splitKey(key, keyMap);
    if (!split) {
      unmatched.push(key);
      continue;
    }
    let roles = groups.get(split.stem);
    if (!roles) groups.set(split.stem, (roles = new Map()));
    roles.set(split.suffix, key);
  }

  const tensor = (key: string): AdapterTensor => ({ key, shape: [...adapter.shape(key)], read: () => adapter.get(key), stored: adapter.locate?.(key) });
  const scalar = (key: string): number => {
    const v = adapter.get(key);
    if (v.length !== 1) throw new Error(`${file}: '${key}' should hold one number, it has shape [${adapter.shape(key).join(', ')}]`);
    return v[0];
  };

  const byTarget = new Map<string, Candidate>();
  const shadowed: string[] = [];
  const formats = new Map<string, number>();
  for (const [stem, roles] of groups) {
    const mapped = keyMap.get(stem)!;
    // A q/k/v stem of a fused open_clip in_proj: patches its third of the rows (grouped below).
    const slice = sliceOf(mapped);
    const target = slice?.target ?? mapped;
    const used = new Set<string>();
    const take = (suffix: string): AdapterTensor | undefined => {
      const key = roles.get(suffix);
      if (key === undefined) return undefined;
      used.add(suffix);
      return tensor(key);
    };
    const need = (suffix: string, because: string): AdapterTensor => {
      const t = take(suffix);
      if (!t) throw new Error(`${file}: '${roles.get(because)}' has no companion '${stem}${suffix}'`);
      return t;
    };
    const alpha = roles.has('.alpha') ? scalar(roles.get('.alpha')!) : undefined;
    const dora = roles.has('.dora_scale') ? tensor(roles.get('.dora_scale')!) : undefined;
    const base = (): { target: string; stem: string; alpha?: number; doraScale?: AdapterTensor } => ({ target, stem, alpha, doraScale: dora });
    // In ComfyUI's order: a later kind found for the same stem replaces an earlier one.
    const found: Candidate[] = [];
    const mark = (patch: WeightPatch, before: Set<string>): void => {
      const keys = [...used].filter((s) => !before.has(s)).map((s) => roles.get(s)!);
      found.push({ patch, keys });
    };
    const snapshot = (): Set<string> => new Set(used);

    if (roles.has('.weight') && roles.has('.on_input')) {
      const before = snapshot();
      const onInput = scalar(roles.get('.on_input')!) !== 0;
      used.add('.on_input');
      mark({ target, stem, kind: 'ia3', weight: take('.weight')!, onInput }, before);
    }
    for (const [up, down] of LORA_SPELLINGS) {
      if (!roles.has(up)) continue;
      const before = snapshot();
      const upT = take(up)!;
      const downT = need(down, up);
      const mid = up === '.lora_up.weight' ? take('.lora_mid.weight') : undefined;
      mark({ ...base(), kind: 'lora', up: upT, down: downT, mid }, before);
      break;
    }
    if (roles.has('.hada_w1_a')) {
      const before = snapshot();
      const t1 = take('.hada_t1');
      const t2 = t1 ? need('.hada_t2', '.hada_t1') : undefined;
      mark({ ...base(), kind: 'loha', w1a: take('.hada_w1_a')!, w1b: need('.hada_w1_b', '.hada_w1_a'), w2a: need('.hada_w2_a', '.hada_w1_a'), w2b: need('.hada_w2_b', '.hada_w1_a'), t1, t2 }, before);
    }
    if (['.lokr_w1', '.lokr_w2', '.lokr_w1_a', '.lokr_w2_a'].some((s) => roles.has(s))) {
      const before = snapshot();
      const w1 = take('.lokr_w1');
      const w1a = w1 ? undefined : take('.lokr_w1_a');
      const w1b = w1a ? need('.lokr_w1_b', '.lokr_w1_a') : undefined;
      const w2 = take('.lokr_w2');
      const w2a = w2 ? undefined : take('.lokr_w2_a');
      const w2b = w2a ? need('.lokr_w2_b', '.lokr_w2_a') : undefined;
      const t2 = w2a ? take('.lokr_t2') : undefined;
      if (!w1 && !w1a) throw new Error(`${file}: LoKr entry '${stem}' has neither lokr_w1 nor lokr_w1_a/b`);
      if (!w2 && !w2a) throw new Error(`${file}: LoKr entry '${stem}' has neither lokr_w2 nor lokr_w2_a/b`);
      mark({ ...base(), kind: 'lokr', w1, w1a, w1b, w2, w2a, w2b, t2 }, before);
    }
    if (roles.has('.a1.weight')) {
      const before = snapshot();
      mark({ ...base(), kind: 'glora', a1: take('.a1.weight')!, a2: need('.a2.weight', '.a1.weight'), b1: need('.b1.weight', '.a1.weight'), b2: need('.b2.weight', '.a1.weight') }, before);
    }
    const biasOf = (suffix: string): string => {
      // The fused in_proj's bias third (marked like the weight's, joined in slicesJoined).
      if (slice && target.endsWith('_weight')) return `${target.slice(0, -'_weight'.length)}_bias#${'qkv'[slice.third]}`;
      if (!target.endsWith('.weight')) throw new Error(`${file}: '${roles.get(suffix)}' patches a bias, but '${target}' is not a weight`);
      return `${target.slice(0, -'.weight'.length)}.bias`;
    };
    if (roles.has('.w_norm')) {
      const before = snapshot();
      mark({ target, stem, kind: 'diff', diff: take('.w_norm')! }, before);
      if (roles.has('.b_norm')) {
        const b = snapshot();
        mark({ target: biasOf('.b_norm'), stem, kind: 'diff', diff: take('.b_norm')! }, b);
      }
    }
    if (roles.has('.diff')) {
      const before = snapshot();
      mark({ target, stem, kind: 'diff', diff: take('.diff')! }, before);
    }
    if (roles.has('.diff_b')) {
      const before = snapshot();
      mark({ target: biasOf('.diff_b'), stem, kind: 'diff', diff: take('.diff_b')! }, before);
    }
    if (roles.has('.set_weight')) {
      const before = snapshot();
      mark({ target, stem, kind: 'set', value: take('.set_weight')! }, before);
    }

    if (found.length) {
      // The alpha and DoRA scale belong to the patch; without one they would patch nothing.
      const shared = ['.alpha', '.dora_scale'].filter((s) => roles.has(s));
      const main = found.find((c) => c.patch.kind === 'lora' || c.patch.kind === 'loha' || c.patch.kind === 'lokr' || c.patch.kind === 'glora');
      if (main) {
        for (const s of shared) {
          used.add(s);
          main.keys.push(roles.get(s)!);
        }
      }
      formats.set(formatOf(stem, roles), (formats.get(formatOf(stem, roles)) ?? 0) + 1);
    }
    for (const [suffix, key] of roles) if (!used.has(suffix)) unmatched.push(key);
    for (const c of found) {
      const at = slice && c.patch.target === target ? mapped : c.patch.target;
      const prev = byTarget.get(at);
      if (prev) shadowed.push(...prev.keys);
      byTarget.set(at, c);
    }
  }

  const patches = slicesJoined(file, byTarget, checkpoint);
  for (const p of patches) {
    if (!checkpoint.has(p.target)) throw new Error(`${file}: '${p.stem}' patches '${p.target}', which the checkpoint does not have`);
    const expected = checkpoint.shape(p.target);
    const check = patchResultShape(p, expected);
    if (check.ok) continue;
    const fam = familyFromMismatch(p.target, expected, check.got);
    if (fam && fam.family !== ckptFamily) throw new AdapterArchitectureError(file, fam.family, `${fam.evidence}: key '${check.key}'`, ckptFamily);
    throw new Error(`${file}: adapter key '${check.key}' does not fit '${p.target}': expected [${check.expected.join(', ')}], got [${check.got.join(', ')}]${check.why ? ` (${check.why})` : ''}`);
  }
  const ranked = [...formats].sort((a, b) => b[1] - a[1]);
  const stems = ranked.reduce((s, [, n]) => s + n, 0);
  // A few odd entries (a ComfyUI-named extra in a kohya file) do not make a file 'mixed'.
  const format = ranked.length === 0 ? 'unknown' : ranked[0][1] >= 0.9 * stems ? ranked[0][0] : 'mixed';
  return { file, patches, unmatched, shadowed, format };
}

/**
 * The file's patches, one per checkpoint tensor: patches of a fused tensor's q/k/v thirds (keys marked
 * `#q`/`#k`/`#v`) become one `slices` patch of it, in q, k, v order, with row blocks from its shape.
 */
function slicesJoined(file: string, byTarget: ReadonlyMap<string, { patch: WeightPatch }>, checkpoint: Pick<WeightSource, 'has' | 'shape'>): WeightPatch[] {
  const out: WeightPatch[] = [];
  const fused = new Map<string, { third: number; patch: BlockPatch }[]>();
  for (const [at, { patch }] of byTarget) {
    const slice = sliceOf(at);
    if (!slice) out.push(patch);
    else if (patch.kind === 'slices') throw new Error(`${file}: '${patch.stem}' nests row-block patches`);
    else {
      let parts = fused.get(slice.target);
      if (!parts) fused.set(slice.target, (parts = []));
      parts.push({ third: slice.third, patch });
    }
  }
  for (const [target, parts] of fused) {
    parts.sort((a, b) => a.third - b.third);
    if (!checkpoint.has(target)) throw new Error(`${file}: '${parts[0].patch.stem}' patches '${target}', which the checkpoint does not have`);
    const rows = checkpoint.shape(target)[0] / 3;
    const patch: SlicesPatch = {
      kind: 'slices',
      target,
      stem: parts.map((p) => p.patch.stem).join('+'),
      parts: parts.map((p) => ({ start: p.third * rows, rows, patch: { ...p.patch, target } })),
    };
    out.push(patch);
  }
  return out;
}
