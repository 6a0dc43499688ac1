// Command-line entry: read the config once, start the server, and on SIGTERM/SIGINT drain in-flight requests
// and streams up to server.shutdown_grace_ms before closing connections and exiting 0.
import { buildApp } from './app.js';
import { ConfigError, loadConfigFromProcess } from './config/load.js';
import type { RecallConfig } from './config/schema.js';

async function main(): Promise<void> {
  let config: RecallConfig;
  try {
    config = loadConfigFromProcess();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`recall: ${err.message}\n`);
    process.exit(2);
  }

  const app = await buildApp(config);
  try {
    await app.listen({ host: config.server.host, port: config.server.port });
  } catch (err) {
    process.stderr.write(`recall: cannot listen on ${config.server.host}:${config.server.port}: ${(err as Error).message}\n`);
    process.exit(1);
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal, grace_ms: config.server.shutdownGraceMs }, 'shutting down: draining in-flight requests');
    const deadline = setTimeout(() => {
      app.log.warn('shutdown grace period over: closing the remaining connections');
      app.server.closeAllConnections();
    }, config.server.shutdownGraceMs);
    deadline.unref();
    app.close().then(
      () => {
        clearTimeout(deadline);
        app.log.info('stopped');
        process.exit(0); // pino's destination flushes itself on exit
      },
      (err: unknown) => {
        app.log.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
