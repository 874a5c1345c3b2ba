// What gateways and workers say to each other through Redis.

import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub } from 'graphql-yoga';
import type { Redis } from 'ioredis';
import type { ComputeDtype, LayerEvent, LensErrorCode, LensOptions, ModelInfo, PositionEvent } from '../../lens/types.js';
import { PREFIX } from './redis.js';

/** A lens job in the model's BullMQ queue; its job id is the result id. */
export interface LensJobData {
  prompt: string;
  options: Omit<LensOptions, 'signal' | 'onLayer' | 'onPosition' | 'onNormed'>;
  /** The identical-request key the result is stored under (computed by the gateway). */
  cacheKey?: string;
  /** The API key's name that asked for it (stored with the result; only it and admin keys read it). */
  owner?: string | null;
}

/** Per-job events on the channel `lensgate:job:<id>`, published by the worker running it. */
export type JobEvent =
  | { type: 'ping' }
  | { type: 'started'; worker: string; attempt: number }
  | { type: 'layer'; worker: string; attempt: number; event: LayerEvent }
  /** A generated position's column (LensOptions.generate), after the prompt's layers. */
  | { type: 'position'; worker: string; attempt: number; event: PositionEvent }
  | { type: 'completed'; worker: string }
  | { type: 'failed'; worker: string; code: LensErrorCode; message: string };

export const JOB_TOPIC = `${PREFIX}:job`;
export const CANCEL_TOPIC = `${PREFIX}:cancel`;

export type ClusterPubSub = ReturnType<typeof createClusterPubSub>;

/** graphql-yoga's PubSub over Redis: publish from any process, subscribe in any other. */
export function createClusterPubSub(publishClient: Redis, subscribeClient: Redis) {
  return createPubSub<{
    [JOB_TOPIC]: [jobId: string, event: JobEvent];
    [CANCEL_TOPIC]: [jobId: string];
  }>({ eventTarget: createRedisEventTarget({ publishClient, subscribeClient }) });
}

/** Published by a worker for each model it loads; gateways tokenize and validate with it. */
export interface ModelDescriptor {
  info: ModelInfo;
  contentHash: string;
  tokenizerJson: unknown;
  tokenizerConfig: unknown;
}

/** A live worker's heartbeat record. */
export interface WorkerRecord {
  id: string;
  host: string;
  pid: number;
  startedAt: number;
  models: Array<{ id: string; device: 'cpu' | 'cuda'; computeType: ComputeDtype; contentHash: string }>;
}

/** A job failure as the worker reports it (the BullMQ failedReason). */
export function encodeFailure(code: LensErrorCode, message: string): string {
  return JSON.stringify({ code, message });
}

export function decodeFailure(reason: string | undefined): { code: LensErrorCode; message: string } | null {
  try {
    const v = JSON.parse(reason ?? '') as { code?: LensErrorCode; message?: string };
    return v.code && typeof v.message === 'string' ? { code: v.code, message: v.message } : null;
  } catch {
    return null;
  }
}
