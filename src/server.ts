// Process entry: config → buildApp → listen; graceful shutdown on SIGTERM/SIGINT.
// With WORKERS > 1 this process is the primary of a cluster: it forks the
// workers (each with its own pools, sharing one port), restarts one that
// dies, and passes shutdown signals on.
import cluster from 'node:cluster';
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, loadDotEnv, type Config } from './config.js';

function loadOrExit(): Config {
  try {
    loadDotEnv();
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`gatehouse: configuration error: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
}

async function serve(config: Config): Promise<void> {
  let gatehouse;
  try {
    gatehouse = await buildApp(config);
  } catch (err) {
    // One line, never a stack: the usual causes are a locked DATA_DIR or an unreachable database.
    console.error(`gatehouse: could not start: ${(err as Error).message}`);
    process.exit(1);
  }
  const { app } = gatehouse;

  // A cluster worker hears Ctrl-C's SIGINT from the terminal and then the
  // primary's SIGTERM; it stops on the latter only, since close-with-grace
  // treats a second signal as "exit now".
  if (cluster.isWorker) process.on('SIGINT', () => {});
  closeWithGrace(
    {
      delay: 20_000,
      skip: cluster.isWorker ? ['SIGINT'] : [],
      logger: { error: (msg: unknown) => app.log.error(msg) },
      onTimeout: () => app.log.error('shutdown took too long; exiting'),
    },
    async ({ signal, err }) => {
      if (err) app.log.error({ err }, 'uncaught error: shutting down');
      else app.log.info({ signal }, 'shutting down: finishing requests in flight');
      // Stops accepting, waits for in-flight requests, then closes stores and the database.
      await app.close();
    },
  );

  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    console.error(`gatehouse: cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`);
    await app.close().catch(() => {});
    process.exit(1);
  }
}

function primary(config: Config): void {
  let stopping = false;
  const started = new Map<number, number>();
  const fork = () => {
    const w = cluster.fork();
    started.set(w.id, Date.now());
  };
  for (let i = 0; i < config.workers; i++) fork();
  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (started.get(worker.id) ?? 0);
    started.delete(worker.id);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    console.error(`gatehouse: worker ${worker.process.pid} exited (${signal ?? code}); starting another`);
    // A worker that dies at once (bad config, database down) would loop: back off.
    setTimeout(fork, lived < 5_000 ? 2_000 : 0);
  });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    setTimeout(() => process.exit(1), 25_000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const config = loadOrExit();
if (config.workers > 1 && cluster.isPrimary) primary(config);
else await serve(config);
