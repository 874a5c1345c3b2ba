import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
type RawConfig = Record<string, unknown>;

/**
 * The ids that end a generation, as transformers' generate() reads them: generation_config.json's
 * eos_token_id when the file has one, else config.json's; a number or a list. Empty when neither
 * names one (generation then always writes maxNewTokens tokens).
 */
export function eosTokenIds(dir: string, config: RawConfig): number[] {
  const ids = (v: unknown): number[] | undefined => {
    if (Number.isInteger(v)) return [v as number];
    if (Array.isArray(v) && v.every((x) => Number.isInteger(x))) return v as number[];
    return undefined;
  };
  const file = join(dir, 'generation_config.json');
  if (existsSync(file)) {
    try {
      const fromFile = ids((JSON.parse(readFileSync(file, 'utf8')) as RawConfig).eos_token_id);
      if (fromFile) return fromFile;
    } catch {
      // An unreadable generation_config.json is not needed for the lens itself; config.json decides.
    }
  }
  return ids(config.eos_token_id) ?? [];
}
