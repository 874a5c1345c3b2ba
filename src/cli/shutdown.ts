// SIGTERM / SIGINT for the long-running commands: run the close steps once, in order, then exit 0.
// Exit 1 when a step fails or the steps outlast `graceMs`, so a stuck close never keeps a stopping
// process (or a pod being replaced) alive.

/** Returns `stopping()`, true once a signal arrived (so a caller still starting up does not exit on its own). */
export function exitOnSignals(options: { label: string; message: string; graceMs: number; close: () => Promise<unknown> }): { stopping: () => boolean } {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${options.label}: ${signal}: ${options.message}`);
    const force = setTimeout(() => process.exit(1), options.graceMs);
    force.unref();
    options
      .close()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        console.error(`${options.label}: error during shutdown`, err);
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  return { stopping: () => stopping };
}
