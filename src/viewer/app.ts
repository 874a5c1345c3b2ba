/// <reference lib="dom" />
// The page's entry (bundled by src/server/viewer.ts): one viewer over the whole page, talking to the
// gateway that served it. Everything else lives in modules that do nothing on import.

import { showError } from './run-panel.js';
import { findElements } from './dom.js';
import { storedApiKey } from './api-key.js';
import { httpTransport } from './transport.js';
import { createViewer } from './viewer.js';

const viewer = createViewer(document.body, httpTransport('/graphql', { apiKey: storedApiKey }));
viewer.start().catch((err: unknown) => {
  showError(findElements(document.body), err);
  document.body.dataset.state = 'error';
});
