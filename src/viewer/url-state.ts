// The settings in the URL fragment (`#model=…&prompt=…&k=5&…`), so a view can be bookmarked or
// shared. Pure: the viewer reads and writes location.hash around these.

import type { ColorMode } from './colors.js';
import type { Settings } from './state.js';

const COLORS: readonly ColorMode[] = ['prob', 'entropy', 'kl', 'rank'];

/** The settings a fragment names, over `base`; unknown colour modes are ignored. */
export function settingsFromHash(hash: string, base: Settings): Settings {
  const h = new URLSearchParams(hash.replace(/^#/, ''));
  const flag = (key: string, current: boolean) => (h.has(key) ? h.get(key) === '1' : current);
  const color = h.get('color') as ColorMode | null;
  return {
    model: h.get('model') ?? base.model,
    prompt: h.get('prompt') ?? base.prompt,
    topK: h.get('k') ?? base.topK,
    layers: h.get('layers') ?? base.layers,
    track: flag('track', base.track),
    stats: flag('stats', base.stats),
    attn: flag('attn', base.attn),
    color: color && COLORS.includes(color) ? color : base.color,
    generate: h.get('gen') ?? base.generate,
    compare: flag('cmp', base.compare ?? false),
    modelB: h.get('modelB') ?? base.modelB,
    promptB: h.get('promptB') ?? base.promptB,
    lens: h.get('lens') ?? base.lens,
  };
}

export function settingsToHash(s: Settings): string {
  const h = new URLSearchParams({
    model: s.model,
    prompt: s.prompt,
    k: s.topK,
    track: s.track ? '1' : '0',
    stats: s.stats ? '1' : '0',
    attn: s.attn ? '1' : '0',
    color: s.color,
  });
  if (s.layers.trim()) h.set('layers', s.layers.trim());
  if (s.generate && s.generate.trim() !== '' && s.generate.trim() !== '0') h.set('gen', s.generate.trim());
  if (s.compare) {
    h.set('cmp', '1');
    if (s.modelB) h.set('modelB', s.modelB);
    if (s.promptB !== undefined) h.set('promptB', s.promptB);
  }
  if (s.lens && s.lens !== 'LOGIT') h.set('lens', s.lens);
  return `#${h.toString()}`;
}

/** Flags that are not settings: `autorun=0` opens the page without running the default prompt. */
export function hashFlag(hash: string, key: string): string | null {
  return new URLSearchParams(hash.replace(/^#/, '')).get(key);
}
