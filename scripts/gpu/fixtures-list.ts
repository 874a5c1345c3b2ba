// The tiny checkpoints the GPU correctness check runs: every norm/rotary/attention variant the
// families test covers, in each storage dtype (F32, F16, BF16), kept few so staging stays small.
export const GPU_FIXTURES = [
  'gpt2-tiny',
  'gpt2-f16',
  'gpt2-bf16-sharded',
  'llama-gqa-tied',
  'llama-gqa-tied-bf16',
  'llama-f16-sharded',
  'llama31-rope',
  'mistral-window4',
  'qwen2-untied-bf16',
] as const;

/** Folder among the fixtures whose tokenizer.json is Llama 3's (the benchmark checkpoint borrows it). */
export const LLAMA3_TOKENIZER_FIXTURE = 'llama-gqa-tied';
