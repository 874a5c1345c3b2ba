import { OnnxLensModel } from './engine.js';
import type { LensModel, OpenOptions } from './types.js';

export * from './types.js';
export * from './widget.js';
export { registerArchitecture, supportedFamilies } from '../architectures/registry.js';
export type { ArchitectureSpec, LayoutPaths, ModelPlan, RawConfig } from '../architectures/spec.js';
export { defineLayout, type LayoutOptions, registerLayout } from '../architectures/custom.js';

/** Opens a Hugging Face model directory (config.json, *.safetensors, tokenizer.json) for the logit lens. */
export function openModel(dir: string, options: OpenOptions = {}): Promise<LensModel> {
  return OnnxLensModel.open(dir, options);
}
