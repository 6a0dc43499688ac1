// `npm run test:faults`: the fault and load scenario (loadtest/fault-scenario.ts) for 60 s with two Redis restarts,
// or as the flags say. Prints a Markdown report, saves the JSON under loadtest/results/, exits 1 when a check fails.
//
//   npm run test:faults -- [--duration 60] [--restarts 2] [--rate 250] [--connections 20] [--stale-ttl 5]
//
// --stale-ttl N stores entries for N s with stale-if-error on (60 s), so that failures meet expired entries.

import { parseArgs } from 'node:util';
import { commandLine, machine, positiveNumber, reportHeading, saveAndPrintReport } from './bench-harness.js';
import { FULL_RUN, faultReportMarkdown, problems, runFaultScenario } from './fault-scenario.js';

/** stale-if-error grace of a --stale-ttl run: longer than the run, so every expired entry qualifies. */
const STALE_GRACE_S = 60;
/** Start-up, the run and shutdown; past it everything is stopped. */
const BUDGET_MARGIN_MS = 60_000;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const { values } = parseArgs({
    args: argv,
    options: { duration: { type: 'string' }, restarts: { type: 'string' }, rate: { type: 'string' }, connections: { type: 'string' }, 'stale-ttl': { type: 'string' } },
  });
  const options = {
    ...FULL_RUN,
    durationS: positiveNumber('duration', values.duration, FULL_RUN.durationS, 600),
    restarts: Math.round(positiveNumber('restarts', values.restarts, FULL_RUN.restarts, 20)),
    rate: Math.round(positiveNumber('rate', values.rate, FULL_RUN.rate, 10_000)),
    connections: Math.round(positiveNumber('connections', values.connections, FULL_RUN.connections, 1_000)),
    stale: values['stale-ttl'] === undefined ? undefined : { ttlS: Math.round(positiveNumber('stale-ttl', values['stale-ttl'], 5, 3_600)), graceS: STALE_GRACE_S },
  };
  const watchdog = setTimeout(() => {
    process.stderr.write('test:faults: still running past its budget; stopping\n');
    process.exit(1);
  }, options.durationS * 1000 + BUDGET_MARGIN_MS);
  const started = new Date();
  const report = await runFaultScenario(options);
  clearTimeout(watchdog);
  const found = problems(report);
  const markdown = [
    ...reportHeading('Faults under load', started.toISOString().slice(0, 10), machine(), commandLine('test:faults', 'loadtest/faults.ts', argv)),
    ...faultReportMarkdown(report, found),
  ].join('\n');
  saveAndPrintReport('faults', started, { ...report, warnings: found }, markdown);
  if (found.length > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`test:faults: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
