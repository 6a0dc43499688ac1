// The in-flight join: after a cache miss, identical requests (same exact key) share one upstream call. In one
// process they join the flight in progress; across instances on one Redis, the instance holding the key's lock
// calls the upstream while the others wait for the entry it stores.
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import type { ExactTier } from '../cache/exact-tier.js';
import type { CachePolicy } from '../cache/policy.js';
import type { RecallConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/catalog.js';
import type { CompletionRoute } from '../openai/assemble.js';
import { RecallError } from '../openai/errors.js';
import type { UpstreamResponse } from '../upstream/client.js';
import { Flight, type FlightMember, type FlightSignal } from './flight.js';
import type { RemoteFlights } from './remote-flights.js';

export interface FlightRequest {
  key: string;
  route: CompletionRoute;
  policy: CachePolicy;
  member: FlightMember;
  /** The upstream call this request would make; only the first of identical requests makes it. */
  call(signal: FlightSignal): Promise<UpstreamResponse>;
  /**
   * Called once the flight's answer is stored under `key`, before it reaches the client (the semantic tier indexes it
   * here, so that an immediate near-repeat finds it); never rejects.
   */
  onStored?: (() => Promise<void>) | undefined;
}

export interface CoalescerDeps {
  exact: ExactTier;
  metrics: Metrics;
  log: FastifyBaseLogger;
  settings: RecallConfig['coalesce'];
  upstream: RecallConfig['upstream'];
  /** Set with Redis: flights are also joined across instances. */
  remote: RemoteFlights | undefined;
  now?: () => number;
}

export class Coalescer {
  private readonly flights = new Map<string, Flight>();
  private readonly now: () => number;

  constructor(private readonly deps: CoalescerDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Is an identical request (same key) in flight in this process, so that this one can join it? */
  inFlightFor(key: string): boolean {
    return this.flights.has(key);
  }

  /** Answers a missed request: joins the identical one in flight, or starts a flight others can join. */
  answer(request: FlightRequest): Promise<FastifyReply> {
    const { key, member } = request;
    const current = this.flights.get(key);
    if (current?.joinable(member)) return current.join(member);

    const { settings, upstream, exact, metrics } = this.deps;
    const flight: Flight = new Flight({
      route: request.route,
      call: request.call,
      store: async (body, ttlS) => {
        const stored = await exact.save(key, body, ttlS);
        if (stored) await request.onStored?.();
        return stored;
      },
      stale: () => exact.stale(key),
      upstream,
      maxFollowers: settings.maxFollowers,
      maxReplayBytes: settings.maxReplayBytes,
      onFinish: () => {
        if (this.flights.get(key) === flight) this.flights.delete(key);
      },
      onCoalesced: (joined, body) => {
        metrics.coalesced(request.route);
        if (body !== undefined) metrics.savedBy((joined.request.body as { model?: unknown }).model, body);
      },
    });
    // A flight that cannot be joined (past its caps) keeps its place; this request then goes upstream on its own.
    if (settings.enabled && current === undefined) this.flights.set(key, flight);
    const answer = flight.join(member);
    this.run(flight, request).catch((err: unknown) => {
      this.deps.log.error({ err }, 'coalesced flight failed');
      void flight.fail(new RecallError('internal', 'Recall failed to handle this request; the error has been logged.', null, { cause: err }));
    });
    return answer;
  }

  private async run(flight: Flight, request: FlightRequest): Promise<void> {
    // Only requests that both read and store the cache wait for another instance's entry.
    const shared = this.deps.settings.enabled && this.deps.remote !== undefined && request.policy.read && request.member.storeTtlS !== undefined;
    if (!shared) return flight.fromUpstream();
    return this.runShared(flight, request, this.deps.remote!);
  }

  /** Leads the key across instances, or waits for the instance that leads it, up to `coalesce.wait_ms`. */
  private async runShared(flight: Flight, request: FlightRequest, remote: RemoteFlights): Promise<void> {
    const deadline = this.now() + this.deps.settings.waitMs;
    const watch = remote.watch(request.key);
    try {
      for (;;) {
        const lock = await remote.acquire(request.key);
        if (lock === undefined) return await flight.fromUpstream();
        if (lock.acquired) {
          try {
            return await flight.fromUpstream();
          } finally {
            await lock.release();
          }
        }
        // Another instance leads: its entry may already be stored, else wait for its message or for its lock to lapse.
        if (await this.answeredFromStore(flight, request)) return;
        const left = deadline - this.now();
        if (left <= 0) return await flight.fromUpstream();
        await watch.next(Math.min(left, lock.ttlMs + 25), flight.signal);
        if (flight.abandoned) return;
        if (await this.answeredFromStore(flight, request)) return;
      }
    } finally {
      watch.close();
    }
  }

  private async answeredFromStore(flight: Flight, request: FlightRequest): Promise<boolean> {
    const found = await this.deps.exact.lookup(request.key, request.policy);
    if (found.outcome !== 'hit') return false;
    flight.fromEntry(found.entry.body);
    return true;
  }
}
