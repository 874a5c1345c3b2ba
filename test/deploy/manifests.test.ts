// deploy/kubernetes: every document parses and validates against the Kubernetes OpenAPI schemas
// (kubernetes-models), and the pieces the distributed mode needs fit together.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { expect, test } from 'vitest';

const dir = join(import.meta.dirname, '../../deploy/kubernetes');
const KINDS = { Deployment, StatefulSet, HorizontalPodAutoscaler, PersistentVolumeClaim, Service } as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = { kind: keyof typeof KINDS; metadata: { name: string }; spec: any };
const docs: Doc[] = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) =>
    parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => {
      expect(d.errors, f).toEqual([]);
      return d.toJS() as Doc;
    }),
  );

test('every manifest is a known kind and valid against the Kubernetes schemas', () => {
  expect(docs.length).toBeGreaterThanOrEqual(7);
  for (const doc of docs) {
    const Model = KINDS[doc.kind];
    expect(Model, `${doc.kind} ${doc.metadata?.name}`).toBeDefined();
    expect(() => new Model(doc as never).validate(), `${doc.kind} ${doc.metadata.name}`).not.toThrow();
  }
  // The validator does catch mistakes: a wrong type fails.
  const bad = structuredClone(docs.find((d) => d.kind === 'Deployment')!);
  bad.spec.replicas = 'two';
  expect(() => new Deployment(bad as never).validate()).toThrow();
});

test('gateways scale on the queue depth; workers hold a GPU; everything points at the Redis service', () => {
  const hpa = docs.find((d) => d.kind === 'HorizontalPodAutoscaler')!;
  expect(hpa.spec.metrics.map((m: { pods?: { metric: { name: string } } }) => m.pods?.metric.name)).toContain('lensgate_queue_depth');
  const gateway = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === hpa.spec.scaleTargetRef.name)!;
  expect(gateway).toBeDefined();
  const redisService = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'lensgate-redis')!;
  const redisUrl = `redis://${redisService.metadata.name}:${redisService.spec.ports[0].port}`;
  const workers = docs.filter((d) => d.kind === 'Deployment' && d.metadata.name.startsWith('lensgate-worker-'));
  expect(workers.length).toBeGreaterThanOrEqual(1);
  for (const d of [gateway, ...workers]) {
    const args: string[] = d.spec.template.spec.containers[0].args;
    expect(args[args.indexOf('--redis') + 1]).toBe(redisUrl);
  }
  for (const w of workers) {
    const c = w.spec.template.spec.containers[0];
    expect(c.command.join(' ')).toMatch(/src\/cli\/worker\.ts/);
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(c.args).toContain('--model');
  }
  const redis = docs.find((d) => d.kind === 'StatefulSet')!;
  expect(redis.spec.template.spec.containers[0].args.join(' ')).toMatch(/--appendonly yes.*--maxmemory-policy noeviction/);
});
