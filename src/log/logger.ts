// The pino logger: JSON lines, and no credential ever written. Known header paths are redacted, and every line is
// scrubbed of key-like values on its way out, whatever field or message carries them.
import pino, { type DestinationStream, type Logger } from 'pino';
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
    destination ?? new LineBatch(pino.destination({ dest: 1, sync: true })),
  );
}

/** Lines are written to stdout this many characters at a time… */
const BATCH_CHARS = 16 * 1024;
/** …and at least this often, and on exit. */
const BATCH_FLUSH_MS = 250;
/** Every batch, for the exit handler; a batch with lines waiting is held by its timer, so only an empty one is collected. */
const liveBatches = new Set<WeakRef<LineBatch>>();

/**
 * Joins log lines and writes them to stdout in one call per 16 KB (and at least every 250 ms, and on exit). One write
 * per line was 13 % of the forwarding path's CPU in profiles; sonic-boom's own batching (`minLength`) measures its whole
 * pending text on every write, which cost 3.4–3.9 µs of CPU per 300-character request line at 4 KB against 0.35–0.85 µs
 * for joining here (a microbenchmark writing to /dev/null). The writes are synchronous, as pino's default: one per 50 or so
 * requests, and a reader that stops reading slows Recall down instead of filling its memory.
 */
export class LineBatch implements DestinationStream {
  private lines: string[] = [];
  private chars = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly flushSoon = (): void => {
    this.timer = undefined;
    this.flush();
  };

  constructor(private readonly target: DestinationStream, private readonly batchChars = BATCH_CHARS) {
    if (liveBatches.size === 0) process.once('exit', flushLiveBatches);
    liveBatches.add(new WeakRef(this));
  }

  write(line: string): void {
    this.lines.push(line);
    this.chars += line.length;
    if (this.chars >= this.batchChars) this.flush();
    else this.timer ??= setTimeout(this.flushSoon, BATCH_FLUSH_MS).unref();
  }

  /** Writes every line collected so far; `done` (pino's `logger.flush(cb)`) is called once they are written. */
  flush(done?: (err?: Error) => void): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.lines.length > 0) {
      const text = this.lines.join('');
      this.lines = [];
      this.chars = 0;
      this.target.write(text);
    }
    done?.();
  }
}

function flushLiveBatches(): void {
  for (const ref of liveBatches) ref.deref()?.flush();
  liveBatches.clear();
}

/**
 * Writes the request line (`msg: "request"`, level info) straight to the logger's destination, as pino would write it
 * (level, time, the logger's bindings, the fields, msg), without pino's per-call serializing and scrubbing: the one
 * line every request writes. `fields` must be JSON members (`"a":1,"b":"x"`) whose client-given strings the caller
 * has already passed through `scrubSecrets`. Undefined when the logger does not log at `info`.
 */
export function requestLineWriter(logger: Logger): ((fields: string) => void) | undefined {
  if (!logger.isLevelEnabled('info')) return undefined;
  const internals = logger as unknown as Record<symbol, unknown>;
  const stream = internals[pino.symbols.streamSym] as DestinationStream;
  const bindings = internals[pino.symbols.chindingsSym] as string;
  const head = `{"level":${logger.levels.values.info}`;
  return (fields) => stream.write(`${head},"time":${Date.now()}${bindings},${fields},"msg":"request"}\n`);
}
