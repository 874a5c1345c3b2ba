// The one path from a validated request to a stored result, shared by Query.lens and
// Subscription.lensLayers.

import { randomUUID } from 'node:crypto';
import type { LensOptions, LensResult } from '../src/lens/types.js';
import type { GatewayContext } from './context.js';
import { toGraphQLError } from './errors.js';
import type { ValidLensRequest } from './lens-input.js';
import type { StoredResult } from './services.js';

/** Runs a validated request through the model's scheduler and stores the result. */
export async function computeLens(
  ctx: GatewayContext,
  req: ValidLensRequest,
  extra: { id?: string; signal?: AbortSignal; onLayer?: LensOptions['onLayer'] } = {},
): Promise<StoredResult> {
  let result: LensResult;
  try {
    result = await req.served.scheduler.run(req.prompt, { ...req.options, signal: extra.signal, onLayer: extra.onLayer });
  } catch (err) {
    throw toGraphQLError(err);
  }
  const stored: StoredResult = {
    id: extra.id ?? randomUUID(),
    modelId: req.served.model.info.id,
    prompt: req.prompt,
    createdAt: new Date(),
    result,
  };
  await ctx.store.put(stored);
  return stored;
}
