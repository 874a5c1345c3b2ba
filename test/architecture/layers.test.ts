// The layer order of src/ (checkpoint → architectures → graph → runtime → lens → resolvers → server
// → cli, viewer and client on top, src/errors.ts below all) as dependency-cruiser checks it with
// .dependency-cruiser.mjs: the repository has no violation, and the same rules do catch one.

import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const config = join(root, '.dependency-cruiser.mjs');
const cli = join(root, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
}

/** Runs the depcruise CLI (exactly what `npx depcruise src resolvers` does) and returns its violations. */
async function violations(cwd: string): Promise<Violation[]> {
  const { stdout } = await promisify(execFile)(process.execPath, [cli, '--config', config, '--output-type', 'json', 'src', 'resolvers'], {
    cwd,
    maxBuffer: 64 * 1024 * 1024,
  });
  const report = JSON.parse(stdout) as { summary: { violations: Violation[]; totalCruised: number } };
  expect(report.summary.totalCruised).toBeGreaterThan(0);
  return report.summary.violations;
}

const format = (v: Violation[]) => v.map((x) => `${x.rule.name}: ${x.from} → ${x.to}`);

describe('layer order', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'lensgate-layers-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  test('no module imports a layer above its own, and there are no cycles', async () => {
    expect(format(await violations(root))).toEqual([]);
  });

  test('the rules report an upward import, a cycle and a folder outside the layers', async () => {
    const write = (path: string, text: string) => {
      mkdirSync(dirname(join(scratch, path)), { recursive: true });
      writeFileSync(join(scratch, path), text);
    };
    cpSync(join(root, 'tsconfig.json'), join(scratch, 'tsconfig.json'));
    write('src/errors.ts', 'export class LensError extends Error {}\n');
    write('src/lens/types.ts', "import { LensError } from '../errors.js';\nexport type Point = string;\nexport { LensError };\n");
    write('src/checkpoint/read.ts', "import type { Point } from '../lens/types.js';\nexport const p: Point = 'x';\n");
    write('resolvers/a.ts', "import { b } from './b.js';\nexport const a = () => b;\n");
    write('resolvers/b.ts', "import { a } from './a.js';\nexport const b = () => a;\n");
    write('src/extra/x.ts', "import { LensError } from '../errors.js';\nexport const e = LensError;\n");
    expect(format(await violations(scratch)).sort()).toEqual(
      [
        'layer-checkpoint: src/checkpoint/read.ts → src/lens/types.ts',
        'no-circular: resolvers/a.ts → resolvers/b.ts',
        'outside-layers: src/extra/x.ts → src/errors.ts',
      ].sort(),
    );
  });
});
