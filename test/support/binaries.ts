// Whether a system tool a test needs (promtool, prometheus, chromium) is installed. Locally a test without its tool
// skips with a message saying what to install; in CI (.ci/run sets RECALL_TEST_REQUIRE_TOOLS=1) a missing tool fails.
import { spawnSync } from 'node:child_process';

export function toolAvailable(name: string, debianPackage: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
  if (found) return true;
  const message = `\`${name}\` is not on PATH: install the Debian package \`${debianPackage}\` (.ci/run does).`;
  if (process.env.RECALL_TEST_REQUIRE_TOOLS === '1') throw new Error(message);
  console.warn(`SKIPPED: ${message}`);
  return false;
}
