/** UI strings in English and Simplified Chinese; node and input names come from object_info display names. */
import { useSyncExternalStore } from 'react';

export type Lang = 'en' | 'zh';

// The interface language for components deep in the canvas (node bodies), which App does not render itself.
let uiLang: Lang = 'en';
const langListeners = new Set<() => void>();

export function setUiLang(lang: Lang): void {
  if (lang === uiLang) return;
  uiLang = lang;
  for (const fn of langListeners) fn();
}

export function useUiLang(): Lang {
  return useSyncExternalStore(
    (fn) => {
      langListeners.add(fn);
      return () => langListeners.delete(fn);
    },
    () => uiLang,
  );
}

const STRINGS = {
  queue: { en: 'Queue', zh: '运行' },
  // Canvas habits and document tabs (issue 19 part A).
  refreshed: { en: 'Node definitions reloaded', zh: '已刷新节点定义' },
  batchCount: { en: 'Batch count', zh: '批次数量' },
  unsaved: { en: 'unsaved changes', zh: '未保存的更改' },
  discardChanges: { en: 'has unsaved changes. Discard them?', zh: '有未保存的更改。要放弃吗？' },
  overwriteConfirm: { en: 'already exists. Overwrite it?', zh: '已存在。要覆盖吗？' },
  newTab: { en: 'New tab', zh: '新标签页' },
  closeTab: { en: 'Close', zh: '关闭' },
  ctxTitle: { en: 'Title', zh: '标题' },
  ctxColor: { en: 'Colour', zh: '颜色' },
  ctxCollapse: { en: 'Collapse', zh: '折叠' },
  ctxExpand: { en: 'Expand', zh: '展开' },
  ctxPin: { en: 'Pin', zh: '固定' },
  ctxUnpin: { en: 'Unpin', zh: '取消固定' },
  ctxBypass: { en: 'Bypass', zh: '绕过' },
  ctxMute: { en: 'Mute', zh: '忽略' },
  ctxRemove: { en: 'Remove', zh: '删除' },
  ctxProperties: { en: 'Properties', zh: '属性' },
  ctxToInput: { en: 'Convert widget to input', zh: '将组件转换为输入' },
  ctxToWidget: { en: 'Convert input to widget', zh: '将输入转换为组件' },
  ctxNoColor: { en: 'No colour', zh: '无颜色' },
  interrupt: { en: 'Interrupt', zh: '中断' },
  new: { en: 'New', zh: '新建' },
  open: { en: 'Open', zh: '打开' },
  save: { en: 'Save', zh: '保存' },
  saveAs: { en: 'Save as', zh: '另存为' },
  rename: { en: 'Rename', zh: '重命名' },
  delete: { en: 'Delete', zh: '删除' },
  exportJson: { en: 'Export', zh: '导出' },
  exportApi: { en: 'Export (API)', zh: '导出 (API)' },
  templates: { en: 'Templates', zh: '模板' },
  workflows: { en: 'Workflows', zh: '工作流' },
  queuePanel: { en: 'Queue', zh: '队列' },
  gallery: { en: 'Gallery', zh: '图库' },
  help: { en: 'Shortcuts', zh: '快捷键' },
  search: { en: 'Search nodes…', zh: '搜索节点…' },
  missingTitle: { en: 'Missing node types', zh: '缺少的节点类型' },
  missingText: {
    en: 'These node classes are not installed; the nodes stay on the canvas, marked red:',
    zh: '以下节点类型未安装；这些节点保留在画布上并以红色标出：',
  },
  close: { en: 'Close', zh: '关闭' },
  pending: { en: 'Pending', zh: '等待中' },
  running: { en: 'Running', zh: '运行中' },
  history: { en: 'History', zh: '历史' },
  clear: { en: 'Clear', zh: '清空' },
  restore: { en: 'Restore unsaved changes?', zh: '恢复未保存的更改？' },
  yes: { en: 'Yes', zh: '是' },
  no: { en: 'No', zh: '否' },
  loadWorkflow: { en: 'Load workflow', zh: '载入工作流' },
  name: { en: 'Name', zh: '名称' },
  connected: { en: 'connected', zh: '已连接' },
  disconnected: { en: 'disconnected', zh: '未连接' },
  errors: { en: 'Prompt has errors', zh: '工作流有错误' },
  group: { en: 'Group', zh: '组' },
  wrongDirection: { en: 'Connect an output to an input', zh: '请将输出连接到输入' },
  madeBy: { en: 'Prompt', zh: '提示' },
  showWorkflow: { en: 'Show workflow', zh: '查看工作流' },
  edgeDblClick: { en: 'Double-click a link', zh: '双击连线' },
  brush: { en: 'Brush', zh: '画笔' },
  eraser: { en: 'Eraser', zh: '橡皮擦' },
  brushSize: { en: 'Size', zh: '大小' },
  invert: { en: 'Invert', zh: '反转' },
  cancel: { en: 'Cancel', zh: '取消' },
  chooseUpload: { en: 'Choose file to upload', zh: '选择文件上传' },
  maskEditor: { en: 'Open in mask editor', zh: '在遮罩编辑器中打开' },
  runError: { en: 'Run failed', zh: '运行失败' },
  download: { en: 'Download', zh: '下载' },
  previous: { en: 'Previous', zh: '上一个' },
  next: { en: 'Next', zh: '下一个' },
  queued: { en: 'queued', zh: '已排队' },
  done: { en: 'done', zh: '完成' },
  failed: { en: 'failed', zh: '失败' },
  undoRedo: { en: 'Undo / redo', zh: '撤销 / 重做' },
  copyPaste: { en: 'Copy / paste', zh: '复制 / 粘贴' },
  mute: { en: 'Mute', zh: '忽略' },
  bypass: { en: 'Bypass', zh: '绕过' },
  reroute: { en: 'Reroute', zh: '转接点' },
  fitView: { en: 'Fit view', zh: '适应视图' },
  dblClick: { en: 'Double-click the canvas', zh: '双击画布' },
  noteText: { en: 'Note', zh: '注释' },
} as const;

export type StringKey = keyof typeof STRINGS;

export function t(key: StringKey, lang: Lang): string {
  return STRINGS[key][lang];
}

/** Simplified Chinese names of core node classes (as ComfyUI's zh locale shows them); others keep their display name. */
const NODE_NAMES_ZH: Record<string, string> = {
  Note: '注释',
  MarkdownNote: 'Markdown注释',
  PrimitiveNode: '元节点',
  Reroute: '转接点',
  LoadImage: '加载图像',
  LoadImageMask: '加载图像（作为遮罩）',
  SaveImage: '保存图像',
  PreviewImage: '预览图像',
  ImageScale: '缩放图像',
  ImageScaleBy: '按系数缩放图像',
  ImageInvert: '反转图像',
  ImageBatch: '图像批次',
  ImagePadForOutpaint: '外补画板',
  ImageCompositeMasked: '遮罩合成图像',
  EmptyImage: '空图像',
  SolidMask: '纯色遮罩',
  InvertMask: '反转遮罩',
  GrowMask: '扩展遮罩',
  FeatherMask: '羽化遮罩',
  MaskToImage: '遮罩转换为图像',
  ImageToMask: '图像转换为遮罩',
  SaveLatent: '保存Latent',
  LoadLatent: '加载Latent',
  CheckpointLoaderSimple: 'Checkpoint加载器',
  CLIPTextEncode: 'CLIP文本编码器',
  KSampler: 'K采样器',
  KSamplerAdvanced: 'K采样器（高级）',
  EmptyLatentImage: '空Latent图像',
  VAEDecode: 'VAE解码',
  VAEEncode: 'VAE编码',
  LoraLoader: 'LoRA加载器',
  LoraLoaderModelOnly: 'LoRA加载器（仅模型）',
  LoraTagLoader: 'LoRA标签加载器（A1111）',
  CLIPTextEncodeA1111: 'CLIP文本编码器（A1111语法）',
  CLIPSetLastLayer: 'CLIP设置停止层',
  VAELoader: 'VAE加载器',
  VAEDecodeTiled: 'VAE分块解码',
  VAEEncodeTiled: 'VAE分块编码',
  VAEEncodeForInpaint: 'VAE内补编码器',
  SetLatentNoiseMask: '设置Latent噪波遮罩',
  LatentUpscale: 'Latent缩放',
  LatentUpscaleBy: 'Latent按系数缩放',
  LatentComposite: 'Latent复合',
  LatentBlend: 'Latent混合',
  LatentFromBatch: '从批次获取Latent',
  RepeatLatentBatch: '复制Latent批次',
  ConditioningCombine: '条件合并',
  ConditioningConcat: '条件联结',
  ConditioningAverage: '条件平均',
  ConditioningSetArea: '条件采样区域',
  ConditioningSetAreaPercentage: '条件采样区域（百分比）',
  ConditioningSetMask: '条件应用遮罩',
  ConditioningSetTimestepRange: '条件设置时间步范围',
  ConditioningZeroOut: '条件零化',
  ModelMergeSimple: '模型融合（简易）',
  CLIPMergeSimple: 'CLIP融合（简易）',
  CheckpointSave: '保存Checkpoint',
  SamplerCustom: '自定义采样器',
  SamplerCustomAdvanced: '自定义采样器（高级）',
  KSamplerSelect: 'K采样器选择',
  BasicScheduler: '基础调度器',
  KarrasScheduler: 'Karras调度器',
  ExponentialScheduler: 'Exponential调度器',
  PolyexponentialScheduler: 'Polyexponential调度器',
  LaplaceScheduler: 'Laplace调度器',
  VPScheduler: 'VP调度器',
  BetaSamplingScheduler: 'Beta采样调度器',
  SDTurboScheduler: 'SDTurbo调度器',
  AlignYourStepsScheduler: 'AlignYourSteps调度器',
  SplitSigmas: '分割Sigmas',
  SplitSigmasDenoise: '按降噪分割Sigmas',
  FlipSigmas: '翻转Sigmas',
  SetFirstSigma: '设置首个Sigma',
  CFGGuider: 'CFG引导器',
  BasicGuider: '基础引导器',
  DualCFGGuider: '双CFG引导器',
  RandomNoise: '随机噪波',
  DisableNoise: '禁用噪波',
  AddNoise: '添加噪波',
};

export function nodeTitle(classType: string, displayName: string | undefined, lang: Lang): string {
  return (lang === 'zh' ? NODE_NAMES_ZH[classType] : undefined) ?? displayName ?? classType;
}

/**
 * Simplified Chinese names of inputs, widgets and outputs, by name (the same terms ComfyUI's zh
 * locale uses for them across node classes); names not listed are shown as they are.
 */
const SOCKET_NAMES_ZH: Record<string, string> = {
  model: '模型',
  clip: 'CLIP',
  vae: 'VAE',
  positive: '正面条件',
  negative: '负面条件',
  latent_image: 'Latent图像',
  seed: '种子',
  noise_seed: '噪波种子',
  control_after_generate: '生成后控制',
  steps: '步数',
  cfg: 'CFG',
  sampler_name: '采样器名称',
  scheduler: '调度器',
  denoise: '降噪',
  ckpt_name: 'Checkpoint名称',
  text: '文本',
  width: '宽度',
  height: '高度',
  batch_size: '批量大小',
  samples: 'Latent',
  images: '图像',
  image: '图像',
  filename_prefix: '文件名前缀',
  upload: '上传',
  channel: '通道',
  mask: '遮罩',
  pixels: '像素',
  upscale_method: '缩放算法',
  scale_by: '缩放系数',
  crop: '裁剪',
  lora_name: 'LoRA名称',
  strength_model: '模型强度',
  strength_clip: 'CLIP强度',
  vae_name: 'VAE名称',
  stop_at_clip_layer: '停止在CLIP层',
  conditioning: '条件',
  conditioning_1: '条件1',
  conditioning_2: '条件2',
  conditioning_to: '条件到',
  conditioning_from: '条件从',
  strength: '强度',
  start_percent: '起始百分比',
  end_percent: '结束百分比',
  grow_mask_by: '扩展遮罩',
  add_noise: '添加噪波',
  start_at_step: '开始步数',
  end_at_step: '结束步数',
  return_with_leftover_noise: '返回剩余噪波',
  sigmas: 'Sigmas',
  sampler: '采样器',
  guider: '引导器',
  noise: '噪波',
  value: '值',
  amount: '数量',
  feathering: '羽化',
  left: '左',
  top: '上',
  right: '右',
  bottom: '下',
  expand: '扩展',
  tapered_corners: '倒角',
  control_net: 'ControlNet',
  control_net_name: 'ControlNet名称',
  ratio: '比例',
  MODEL: '模型',
  CLIP: 'CLIP',
  VAE: 'VAE',
  LATENT: 'Latent',
  IMAGE: '图像',
  MASK: '遮罩',
  CONDITIONING: '条件',
  CONTROL_NET: 'ControlNet',
  SIGMAS: 'Sigmas',
  SAMPLER: '采样器',
  NOISE: '噪波',
  GUIDER: '引导器',
  INT: '整数',
  FLOAT: '浮点',
  STRING: '字符串',
  output: '输出',
  denoised_output: '降噪输出',
  'connect to widget input': '连接到组件输入',
};

/** An input, widget or output name in the interface language. */
export function socketName(name: string, lang: Lang): string {
  return (lang === 'zh' ? SOCKET_NAMES_ZH[name] : undefined) ?? name;
}

const CATEGORY_NAMES_ZH: Record<string, string> = {
  loaders: '加载器',
  sampling: '采样',
  conditioning: '条件',
  latent: 'Latent',
  image: '图像',
  mask: '遮罩',
  advanced: '高级',
  utils: '实用工具',
  custom_sampling: '自定义采样',
  schedulers: '调度器',
  samplers: '采样器',
  sigmas: 'Sigmas',
  noise: '噪波',
  guiders: '引导器',
  upscaling: '放大',
  transform: '变换',
  inpaint: '局部重绘',
  batch: '批处理',
  preprocessors: '预处理器',
  model_merging: '模型融合',
  model_patches: '模型补丁',
  postprocessing: '后处理',
  compositing: '合成',
  controlnet: 'ControlNet',
  style_model: '风格模型',
  area: '区域',
  style: '风格',
  primitive: '基础值',
  deprecated: '已弃用',
  experimental: '实验性',
  _for_testing: '测试用',
  model: '模型',
  operations: '操作',
  text: '文本',
  detection: '检测',
};

/** A category path (`latent/inpaint`) in the interface language, part by part. */
export function categoryName(category: string, lang: Lang): string {
  if (lang !== 'zh') return category;
  return category
    .split('/')
    .map((p) => CATEGORY_NAMES_ZH[p] ?? p)
    .join('/');
}

/** The Chinese name of a node class, whatever the interface language (search finds nodes by it). */
export function chineseNodeName(classType: string): string | undefined {
  return NODE_NAMES_ZH[classType];
}
