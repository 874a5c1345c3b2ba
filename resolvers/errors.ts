// Every error a client sees is a GraphQLError with extensions.code; nothing else passes masking.

import { GraphQLError } from 'graphql';
import { LensError } from '../src/errors.js';

export type GatewayErrorCode =
  | 'MODEL_NOT_FOUND'
  | 'MODEL_LOADING'
  | 'MODEL_FAILED'
  | 'BAD_USER_INPUT'
  | 'PROMPT_TOO_LONG'
  | 'CANCELLED'
  | 'OVERLOADED'
  | 'TOKENIZER_MISMATCH'
  | 'LENS_UNAVAILABLE'
  | 'UNAVAILABLE'
  | 'RESPONSE_TOO_LARGE'
  | 'TOO_MANY_SUBSCRIPTIONS'
  | 'FORBIDDEN'
  | 'RESULT_EXPIRED'
  | 'INTERNAL';

export function gatewayError(code: GatewayErrorCode, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code } });
}

const PASSED_THROUGH = new Set(['MODEL_NOT_FOUND', 'BAD_USER_INPUT', 'PROMPT_TOO_LONG', 'CANCELLED', 'OVERLOADED', 'UNAVAILABLE', 'TOKENIZER_MISMATCH', 'LENS_UNAVAILABLE', 'RESULT_EXPIRED']);

/**
 * Maps core errors onto the public codes. Checkpoint, device and unknown failures are operator
 * problems: the client gets INTERNAL without details, the log gets the cause.
 */
export function toGraphQLError(err: unknown): GraphQLError {
  if (err instanceof GraphQLError) return err;
  if (err instanceof LensError && PASSED_THROUGH.has(err.code)) {
    return gatewayError(err.code as GatewayErrorCode, err.message);
  }
  console.error('[lensgate] internal error:', err);
  return gatewayError('INTERNAL', 'Internal server error');
}
