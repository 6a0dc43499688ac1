// The pino logger: JSON lines, and no credential ever written. Known header paths are redacted, and every line is
// scrubbed of key-like values on its way out, whatever field or message carries them.
import pino, { type Bindings, type ChildLoggerOptions, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from '../config/schema.js';

const REDACTED = '[redacted]';

const REDACT_PATHS = [
  'req.headers.authorization', 'req.headers["api-key"]', 'req.headers["x-api-key"]', 'req.headers["proxy-authorization"]',
  'req.headers.cookie', 'headers.authorization', 'headers["api-key"]', 'headers["x-api-key"]',
];

// `sk-…` style keys, bearer tokens, and key-named JSON fields or query parameters.
const KEY_LIKE = [
  /\b(?:sk|rk|pk)-[A-Za-z0-9_-]{6,}/g,
  /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi,
  /("(?:authorization|api[-_]?key|x-api-key|token|secret|password|access_token)"\s*:\s*")[^"]*(")/gi,
  /([?&](?:api[-_]?key|key|token|access_token|secret)=)[^&"\s]*/gi,
];

// One cheap pass decides whether a line needs the four scrubbing passes; most request lines do not.
const MAY_HOLD_SECRET = /[spr]k-|bearer|basic|key|token|secret|passw/i;

/** Replaces anything that looks like a credential; applied to each serialized log line. */
export function scrubSecrets(line: string): string {
  if (!MAY_HOLD_SECRET.test(line)) return line;
  let out = line;
  out = out.replace(KEY_LIKE[0]!, REDACTED);
  out = out.replace(KEY_LIKE[1]!, `$1 ${REDACTED}`);
  out = out.replace(KEY_LIKE[2]!, `$1${REDACTED}$2`);
  out = out.replace(KEY_LIKE[3]!, `$1${REDACTED}`);
  return out;
}

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'recall' },
      // Epoch milliseconds: an ISO date string per line was 2.6 % of a cache hit's CPU.
      timestamp: pino.stdTimeFunctions.epochTime,
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      hooks: { streamWrite: scrubSecrets },
    },
    // Lines are written in 4 KB batches (and at least every 500 ms, and on exit): one write per line was 13 % of the
    // forwarding path's CPU in profiles.
    destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 500 }),
  );
}

/**
 * Fastify gives every request a child logger, though a request that goes well never logs through it (its request
 * line is written apart, see request-log.ts): the child is made on first use. Making one was about 0.5 µs a request.
 */
export function lazyChildLogger(logger: Logger, bindings: Bindings, options: ChildLoggerOptions): Logger {
  return new LazyChildLogger(logger, bindings, options) as unknown as Logger;
}

class LazyChildLogger {
  private made: Logger | undefined;

  constructor(private readonly parent: Logger, private readonly bindings: Bindings, private readonly options: ChildLoggerOptions) {}

  private get logger(): Logger {
    return (this.made ??= this.parent.child(this.bindings, this.options));
  }

  get level(): string {
    return this.made?.level ?? this.options.level ?? this.parent.level;
  }

  set level(level: string) {
    this.logger.level = level;
  }

  isLevelEnabled(level: string): boolean {
    return this.logger.isLevelEnabled(level);
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): Logger {
    return this.logger.child(bindings, options);
  }

  fatal(...args: Parameters<Logger['fatal']>): void { this.logger.fatal(...args); }
  error(...args: Parameters<Logger['error']>): void { this.logger.error(...args); }
  warn(...args: Parameters<Logger['warn']>): void { this.logger.warn(...args); }
  info(...args: Parameters<Logger['info']>): void { this.logger.info(...args); }
  debug(...args: Parameters<Logger['debug']>): void { this.logger.debug(...args); }
  trace(...args: Parameters<Logger['trace']>): void { this.logger.trace(...args); }
  silent(...args: Parameters<Logger['silent']>): void { this.logger.silent(...args); }
}

/**
 * Writes one `info` line with these fields straight to the logger's destination, as pino would write it (level,
 * time, the logger's bindings, the fields, msg), without pino's per-call serializing and scrubbing: for the one line
 * every request writes. `fields` must be JSON members (`"a":1,"b":"x"`) whose client-given strings the caller has
 * already passed through `scrubSecrets`. Undefined when the logger does not log at `info`.
 */
export function directInfoWriter(logger: Logger): ((fields: string, msg: string) => void) | undefined {
  if (!logger.isLevelEnabled('info')) return undefined;
  const symbols = pino.symbols as typeof pino.symbols & { chindingsSym: symbol };
  const internals = logger as unknown as Record<symbol, unknown>;
  const stream = internals[symbols.streamSym] as DestinationStream;
  const bindings = internals[symbols.chindingsSym] as string;
  const head = `{"level":${logger.levels.values.info}`;
  return (fields, msg) => stream.write(`${head},"time":${Date.now()}${bindings},${fields},"msg":${JSON.stringify(msg)}}\n`);
}
