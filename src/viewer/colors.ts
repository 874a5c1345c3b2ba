/// <reference lib="dom" />
// Cell colours. Every mode maps its quantity to t ∈ [0, 1] with "dark = the model is sure / already
// agrees with the final layer", so the eye reads all modes the same way; each mode has its own hue
// so a screenshot says which one it shows.

export type ColorMode = 'prob' | 'entropy' | 'kl' | 'rank';

type Rgb = [number, number, number];

const RAMPS: Record<ColorMode, string[]> = {
  prob: ['#f3f6fc', '#cddcf6', '#93b5ee', '#5587de', '#2a5cc4', '#173c8c'],
  entropy: ['#f7f4fb', '#ddd1ef', '#b79fdc', '#8c6bc4', '#6742a3', '#45257a'],
  kl: ['#f2f8f5', '#cde9db', '#93cfb1', '#55ad86', '#2b8660', '#145c3f'],
  rank: ['#fdf6ee', '#f8ddbc', '#f0b679', '#de8a3d', '#b8641c', '#7f420c'],
};

function hex(c: string): Rgb {
  return [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)];
}

const PARSED: Record<ColorMode, Rgb[]> = Object.fromEntries(
  Object.entries(RAMPS).map(([k, v]) => [k, v.map(hex)]),
) as Record<ColorMode, Rgb[]>;

function lerp(stops: Rgb[], t: number): Rgb {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((c) => Math.round(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f)) as Rgb;
}

/** Background and a text colour that stays readable on it (WCAG relative luminance). */
export function cellColors(mode: ColorMode, t: number): { bg: string; fg: string } {
  const [r, g, b] = lerp(PARSED[mode], t);
  const lin = (v: number) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const lum = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  return { bg: `rgb(${r},${g},${b})`, fg: lum > 0.3 ? '#1d2433' : '#ffffff' };
}

export function gradient(mode: ColorMode): string {
  return `linear-gradient(to right, ${RAMPS[mode].join(', ')})`;
}

/** Scale for the current run: the raw value of a cell → t, plus legend labels. */
export interface Scale {
  mode: ColorMode;
  title: string;
  toT(v: number): number;
  ticks: [string, string, string];
}

export function makeScale(mode: ColorMode, max: number): Scale {
  switch (mode) {
    case 'prob':
      return { mode, title: 'top-1 probability', toT: (v) => v, ticks: ['0', '0.5', '1'] };
    case 'entropy': {
      const m = Math.max(max, 1e-6);
      return { mode, title: 'entropy (nats), low = sure', toT: (v) => 1 - v / m, ticks: [fmt(m), fmt(m / 2), '0'] };
    }
    case 'kl': {
      const m = Math.max(max, 1e-6);
      return { mode, title: 'KL(final ‖ layer), nats', toT: (v) => 1 - v / m, ticks: [fmt(m), fmt(m / 2), '0'] };
    }
    case 'rank': {
      // Log scale, capped: the interesting part is rank 0 vs 1–10 vs "nowhere near". Rank 0 alone gets
      // the darkest colour so "already the final answer" stands apart from "close".
      const m = Math.min(Math.max(max, 1), 1000);
      const lg = (v: number) => Math.min(1, Math.log10(1 + v) / Math.log10(1 + m));
      const mid = String(Math.round(Math.sqrt(1 + m) - 1));
      return {
        mode,
        title: 'rank of the final top-1 (log)',
        toT: (v) => (v === 0 ? 1 : 0.8 * (1 - lg(v))),
        ticks: [max > m ? `${m}+` : String(m), mid, '0'],
      };
    }
  }
}

function fmt(v: number): string {
  return v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2);
}
