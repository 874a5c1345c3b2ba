// WidgetFormat: which logitlenskit layout LensResult.widget returns (conversion: src/lens/widget.ts).

import { builder } from './builder.js';

export const WidgetFormatEnum = builder.enumType('WidgetFormat', {
  description: 'logitlenskit widget JSON layout: V2 (compact, recommended) or V1 (legacy, per cell).',
  values: ['V1', 'V2'] as const,
});
