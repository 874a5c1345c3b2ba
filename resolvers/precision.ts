// `precision:` on the JSON float arrays: significant digits per number (1…17), for clients that
// want plain JSON but fewer bytes. Without it the numbers are printed in full, as they always were.

import { checkPrecision, roundSignificant } from '../src/lens/packed.js';
import { toGraphQLError } from './errors.js';

export const PRECISION_DESCRIPTION = 'Significant digits per number (1…17); default: every digit of the float64.';

type Nested = number | null | Nested[];

/** `values` with every number rounded to `precision` significant digits; unchanged without one. */
export function rounded<T extends Nested>(values: T, precision: number | null | undefined): T {
  if (precision == null) return values;
  try {
    checkPrecision(precision);
  } catch (err) {
    throw toGraphQLError(err);
  }
  const walk = (v: Nested): Nested => (Array.isArray(v) ? v.map(walk) : v == null ? v : roundSignificant(v, precision));
  return walk(values) as T;
}
