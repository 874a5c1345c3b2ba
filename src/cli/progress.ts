// Load progress for the CLIs: a live bar (cli-progress) when stderr is a terminal, plain lines at
// every tenth of the load otherwise (logs and pipes get a readable record, not carriage returns).

import cliProgress from 'cli-progress';
import type { LoadProgress } from '../lens/types.js';

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

export interface LoadReporter {
  onProgress(p: LoadProgress): void;
  /** Ends the bar (if any); `ok` false leaves it where the load stopped. */
  done(ok: boolean): void;
}

export function loadReporter(label: string, stream: NodeJS.WriteStream = process.stderr, prefix = ''): LoadReporter {
  if (stream.isTTY) {
    let bar: cliProgress.SingleBar | null = null;
    return {
      onProgress(p) {
        const payload = { label, layers: `${p.layersBuilt}/${p.layers} layers`, bytes: `${mib(p.bytesMapped)} / ${mib(p.bytesTotal)}` };
        if (!bar) {
          bar = new cliProgress.SingleBar(
            {
              stream,
              format: `${prefix}{label} [{bar}] {percentage}% | {layers} | {bytes} mapped | {duration_formatted}`,
              hideCursor: true,
              // The bar advances per block, and blocks of a large model take seconds each.
              etaBuffer: 4,
              fps: 10,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(Math.max(1, p.bytesTotal), p.bytesMapped, payload);
        }
        bar.update(p.bytesMapped, payload);
      },
      done(ok) {
        if (!bar) return;
        if (!ok) bar.stop();
        else {
          bar.update(bar.getTotal());
          bar.stop();
        }
      },
    };
  }
  let lastTenth = -1;
  return {
    onProgress(p) {
      const tenth = p.layers ? Math.floor((10 * p.layersBuilt) / p.layers) : 0;
      if (tenth === lastTenth) return;
      lastTenth = tenth;
      stream.write(`${prefix}loading ${label}: ${p.layersBuilt}/${p.layers} layers, ${mib(p.bytesMapped)} / ${mib(p.bytesTotal)} mapped\n`);
    },
    done() {},
  };
}
