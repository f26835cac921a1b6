// Process entry: config → buildApp → listen; graceful shutdown on SIGTERM/SIGINT.
import { buildApp } from './app.js';
import { ConfigError, loadConfig, loadDotEnv } from './config.js';
import { DataDirLockedError } from './db/client.js';

export async function main(): Promise<void> {
  let config;
  try {
    loadDotEnv();
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`gatehouse: configuration error: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }

  let gatehouse;
  try {
    gatehouse = await buildApp(config);
  } catch (err) {
    if (err instanceof DataDirLockedError) {
      console.error(`gatehouse: ${err.message}`);
      process.exit(1);
    }
    console.error(`gatehouse: could not start: ${(err as Error).message}`);
    process.exit(1);
  }
  const { app } = gatehouse;

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: finishing requests in flight');
    // Stops accepting, waits for in-flight requests, then closes stores and the database.
    const force = setTimeout(() => {
      app.log.error('shutdown took too long; exiting');
      process.exit(1);
    }, 20_000);
    force.unref();
    app.close().then(
      () => process.exit(0),
      (err) => {
        app.log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    console.error(`gatehouse: cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`);
    await app.close().catch(() => {});
    process.exit(1);
  }
}

await main();
