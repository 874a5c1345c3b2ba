// A model as a gateway sees it in distributed mode: its info and tokenizer (from the worker's
// descriptor) for validation, tokens and decoding; the forward passes run on workers.

import { loadTokenizer, type TextTokenizer } from '../../checkpoint/tokenizer.js';
import { LensError, type LensModel, type LensResult, type ModelInfo, type Token } from '../../lens/types.js';
import type { ModelDescriptor } from './protocol.js';

function elsewhere(): Promise<never> {
  return Promise.reject(new LensError('INTERNAL', 'this model runs on cluster workers; use its scheduler'));
}

export class RemoteLensModel implements LensModel {
  private readonly tokenizer: TextTokenizer;
  info: ModelInfo;

  constructor(descriptor: ModelDescriptor) {
    this.info = descriptor.info;
    this.tokenizer = loadTokenizer(descriptor.tokenizerJson, descriptor.tokenizerConfig);
  }

  tokenize(text: string): Token[] {
    return this.tokenizer.encode(text).map((id, position) => ({ position, id, text: this.tokenizer.decodeOne(id) }));
  }

  decode(id: number): string {
    return this.tokenizer.decodeOne(id);
  }

  lens(): Promise<LensResult> {
    return elsewhere();
  }

  lensBatch(): Promise<Array<LensResult | LensError>> {
    return elsewhere();
  }

  lensNaive(): Promise<LensResult> {
    return elsewhere();
  }

  async close(): Promise<void> {}
}
