/** UI strings in English and Simplified Chinese; node and input names come from object_info display names. */
export type Lang = 'en' | 'zh';

const STRINGS = {
  queue: { en: 'Queue', zh: '运行' },
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
  missingText: { en: 'These node classes are not installed; the nodes stay on the canvas, marked red:', zh: '以下节点类型未安装；这些节点保留在画布上并以红色标出：' },
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
} as const;

export type StringKey = keyof typeof STRINGS;

export function t(key: StringKey, lang: Lang): string {
  return STRINGS[key][lang];
}

/** Simplified Chinese names of core node classes (as ComfyUI's zh locale shows them); others keep their display name. */
const NODE_NAMES_ZH: Record<string, string> = {
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
};

export function nodeTitle(classType: string, displayName: string | undefined, lang: Lang): string {
  return (lang === 'zh' ? NODE_NAMES_ZH[classType] : undefined) ?? displayName ?? classType;
}
