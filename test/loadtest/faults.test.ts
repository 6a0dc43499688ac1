// The fault and load scenario, short: 12 s of load against a Recall process on a throwaway Redis that is restarted once,
// with the mock upstream failing 5 % of its calls and stalling 1 %. `npm run test:faults` runs the 60 s version, and
// with `-- --stale-ttl 5` the same with stale-if-error answers (docs/RELIABILITY.md). What a client sees must be the
// upstream's own failures and nothing else.
import { describe, expect, it } from 'vitest';
import { classify, FULL_RUN, problems, runFaultScenario, type FaultReport } from '../../loadtest/fault-scenario.js';

describe('classify', () => {
  const mockError = JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } });
  const recallError = (code: string) => JSON.stringify({ error: { message: 'x', type: 'api_error', param: null, code } });

  it.each([
    [200, '{}', {}, 'served'],
    [503, mockError, { 'x-mock-fault': '503' }, 'upstream_error'],
    [504, recallError('upstream_timeout'), {}, 'upstream_stall'],
    // Recall's own errors, an unmarked 5xx, a marked one whose status Recall changed, and a body that is not the mock's.
    [502, recallError('upstream_unreachable'), {}, 'recall_failure'],
    [500, recallError('internal_error'), {}, 'recall_failure'],
    [503, mockError, {}, 'recall_failure'],
    [502, mockError, { 'x-mock-fault': '503' }, 'recall_failure'],
    [503, 'Service Unavailable', { 'x-mock-fault': '503' }, 'recall_failure'],
  ])('%i %s %j is %s', (status, body, headers, kind) => {
    expect(classify(status, body, headers).kind).toBe(kind);
  });
});

describe('Recall under load while Redis restarts and the upstream fails', () => {
  it('causes no failure itself, stays within bounded memory, and its hit rate recovers after the restart', async () => {
    const report: FaultReport = await runFaultScenario({ ...FULL_RUN, durationS: 12, restarts: 1, rate: 200 });

    // Every non-2xx answer is an upstream error passed through (marked and shaped as the mock sent it) or a stalled
    // upstream call ended by Recall's headers timeout; no socket errors, no client timeouts.
    expect(report.recallFailures).toEqual([]);
    expect(report.byClass.recall_failure).toBe(0);
    expect(report.autocannon).toMatchObject({ errors: 0, timeouts: 0 });
    expect(report.byClass.served + report.byClass.upstream_error + report.byClass.upstream_stall).toBe(report.responses);
    expect(report.recall.alive).toBe(true);

    // The faults really happened and reached clients as the upstream's answers.
    const mockErrors = (report.mock.faults['500'] ?? 0) + (report.mock.faults['502'] ?? 0) + (report.mock.faults['503'] ?? 0);
    expect(mockErrors).toBeGreaterThan(0);
    expect(report.byClass.upstream_error).toBeGreaterThan(0);
    expect(report.servedBy.HIT).toBeGreaterThan(0);

    // The restart emptied Redis (hits dropped), and hits came back.
    const [restart] = report.restarts;
    expect(restart).toBeDefined();
    expect(restart!.during.hitRate!).toBeLessThan(restart!.before.hitRate!);
    expect(problems(report)).toEqual([]);
  }, 120_000);
});
