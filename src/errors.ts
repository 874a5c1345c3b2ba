// The one error type of the core. Every layer throws it (a bad checkpoint, an unknown family, an
// unavailable device, a cancelled job) and the gateway maps its code onto GraphQL errors, so it sits
// below all layers and imports nothing.

export type LensErrorCode =
  | 'BAD_USER_INPUT'
  | 'PROMPT_TOO_LONG'
  | 'CANCELLED'
  | 'OVERLOADED'
  | 'MODEL_NOT_FOUND'
  | 'UNKNOWN_MODEL_TYPE'
  | 'CHECKPOINT_INVALID'
  | 'DEVICE_UNAVAILABLE'
  | 'TOKENIZER_MISMATCH'
  | 'LENS_INVALID'
  | 'LENS_MISMATCH'
  | 'LENS_UNAVAILABLE'
  /** Distributed mode: no live worker holds the model, or its worker died and the retry did too. */
  | 'UNAVAILABLE'
  /** A stored result whose time to live has passed (the store's --result-ttl-s). */
  | 'RESULT_EXPIRED'
  | 'INTERNAL';

export class LensError extends Error {
  constructor(
    readonly code: LensErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'LensError';
  }
}
