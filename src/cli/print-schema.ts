// Writes schema/schema.graphql from the Pothos schema (npm run schema:print). The file is checked in
// so clients and codegen read the contract without running the server; a test fails when stale.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { printSchema } from 'graphql';
import { schema } from '../../resolvers/schema.js';

export const SCHEMA_PATH = fileURLToPath(new URL('../../schema/schema.graphql', import.meta.url));

export function printedSchema(): string {
  return printSchema(schema) + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SCHEMA_PATH, printedSchema());
  console.log(`wrote ${SCHEMA_PATH}`);
}
