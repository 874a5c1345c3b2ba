// Imports every type file (each registers its types and fields) and builds the schema once.

import { builder } from './builder.js';
import './model.js';
import './prompt.js';
import './lens-input.js';
import './token-prob.js';
import './lens-cell.js';
import './tracked-position.js';
import './lens-stats.js';
import './lens-timings.js';
import './lens-attention.js';
import './widget-format.js';
import './lens-result.js';
import './lens-events.js';
import './packed.js';

export const schema = builder.toSchema({ sortSchema: false });
