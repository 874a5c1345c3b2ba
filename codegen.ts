// GraphQL Code Generator: typed documents for the viewer and the tests, from the checked-in SDL and
// the operations in schema/operations. Run `npm run schema:print && npm run codegen` after a schema change.

import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: 'schema/schema.graphql',
  documents: ['schema/operations/*.graphql'],
  // NodeNext ESM needs explicit extensions in the generated imports.
  importExtension: '.js',
  ignoreNoDocuments: false,
  generates: {
    'src/client/': {
      preset: 'client',
      // persisted-documents.json (sha256 → operation) is the allow-list for `--trusted-documents`;
      // each typed document also carries its hash in `__meta__.hash`.
      presetConfig: { fragmentMasking: false, persistedDocuments: { hashAlgorithm: 'sha256' } },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        // The PACKED arrays' JSON shape is defined next to their decoder.
        scalars: { JSON: 'unknown', PackedArray: "import('../lens/packed.js').PackedArray" },
      },
    },
  },
};

export default config;
