// A warning that would repeat on every request while something stays broken (Redis down, the embedder failing): it
// is logged at most once per interval, the first time at once. Each owner keeps its own.

const DEFAULT_INTERVAL_MS = 10_000;

interface WarnLog {
  warn(fields: object, message: string): void;
}

export class ThrottledWarning {
  private lastAt = -Infinity;

  constructor(
    private readonly log: WarnLog,
    private readonly intervalMs = DEFAULT_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  warn(fields: object, message: string): void {
    const now = this.now();
    if (now - this.lastAt < this.intervalMs) return;
    this.lastAt = now;
    this.log.warn(fields, message);
  }
}
