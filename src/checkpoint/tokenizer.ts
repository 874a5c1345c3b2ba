import { Tokenizer } from '@huggingface/tokenizers';
import { LensError } from '../errors.js';

export interface TextTokenizer {
  /** Ids the model sees, special tokens added by the post-processor included. */
  encode(text: string): number[];
  decodeOne(id: number): string;
}

export function loadTokenizer(json: unknown, config: unknown): TextTokenizer {
  let tk: Tokenizer;
  try {
    tk = new Tokenizer(json as object, (config ?? {}) as object);
  } catch (e) {
    throw new LensError('CHECKPOINT_INVALID', `tokenizer.json could not be loaded: ${(e as Error).message}`);
  }
  const cache = new Map<number, string>();
  return {
    encode: (text) => tk.encode(text).ids,
    decodeOne(id) {
      let s: string | undefined = cache.get(id);
      if (s === undefined) {
        try {
          s = tk.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false }) ?? '';
        } catch {
          s = '';
        }
        cache.set(id, s ?? "");
      }
      return s as string;
    },
  };
}
