/** Entry point of a forked worker process (cluster.setupPrimary exec). */
import { parseWorkerSpec, runWorker } from './worker';

runWorker(parseWorkerSpec(process.env)).catch((err) => {
  // The primary logs the exit and restarts us with backoff.
  process.stderr.write(`moor worker failed to start: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
