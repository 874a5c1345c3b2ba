// npm run bench -- <name> [args]: runs bench/<name>.ts
const [name, ...rest] = process.argv.slice(2);
const known = ['lens', 'gateway', 'large', 'cluster', 'generate', 'deflate', 'memory'];
if (!name || !known.includes(name)) {
  process.stderr.write(`usage: npm run bench -- <${known.join('|')}> [options]\n`);
  process.exit(2);
}
process.argv = [process.argv[0], `bench/${name}.ts`, ...rest];
await import(`./${name}.js`);
