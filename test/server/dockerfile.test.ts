// No Docker engine runs on the development or CI machines, so the image cannot be built here: the
// Dockerfile is linted (dockerfile-utils, the validator behind VS Code's Docker support) and its
// requirements are checked by reading it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validate, ValidationSeverity } from 'dockerfile-utils';
import { expect, test } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const text = readFileSync(join(root, 'Dockerfile'), 'utf8');

test('dockerfile-utils reports no problems, with every optional rule at error level', () => {
  const E = ValidationSeverity.ERROR;
  const diagnostics = validate(text, {
    deprecatedMaintainer: E,
    directiveCasing: E,
    emptyContinuationLine: E,
    instructionCasing: E,
    instructionCmdMultiple: E,
    instructionEntrypointMultiple: E,
    instructionHealthcheckMultiple: E,
    instructionJSONInSingleQuotes: E,
    instructionWorkdirRelative: E,
  });
  expect(diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
});

/** Instructions as [KEYWORD, arguments], continuation lines joined, comments dropped. */
function instructions(src: string): Array<[string, string]> {
  return src
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\w+)\s*(.*)$/.exec(l)!;
      return [m[1].toUpperCase(), m[2]];
    });
}

test('multi-stage, CUDA runtime final image, non-root, HEALTHCHECK on /health, models volume', () => {
  const all = instructions(text);
  const args = Object.fromEntries(all.filter(([k]) => k === 'ARG').map(([, a]) => a.split('=') as [string, string]));
  const fromIdx = all.flatMap(([k], i) => (k === 'FROM' ? [i] : []));
  expect(fromIdx.length).toBeGreaterThanOrEqual(2);
  const finalFrom = all[fromIdx[fromIdx.length - 1]][1].split(/\s+/)[0];
  const finalImage = finalFrom.replace(/^\$\{(\w+)\}$/, (_, name: string) => args[name] ?? name);
  expect(finalImage).toMatch(/^nvidia\/cuda:[\d.]+-runtime-/);
  const finalStage = all.slice(fromIdx[fromIdx.length - 1]);
  const of = (kw: string) => finalStage.filter(([k]) => k === kw).map(([, a]) => a);
  expect(of('USER')).toHaveLength(1);
  expect(of('USER')[0]).not.toMatch(/^(root|0)(:|$)/);
  expect(of('HEALTHCHECK').join(' ')).toMatch(/\/health/);
  expect(of('VOLUME').join(' ')).toMatch(/\/models/);
  expect(readFileSync(join(root, '.dockerignore'), 'utf8')).toMatch(/^node_modules$/m);
});
