// Whether a system tool a test needs (promtool, prometheus, chromium) is installed. Locally a test without its tool
// skips with a message saying what to install; in CI (.ci/run sets RECALL_TEST_REQUIRE_TOOLS=1) a missing tool fails.
import { spawnSync } from 'node:child_process';

/** The tool's absolute path, or undefined (after saying so) when it is missing and the run may skip. */
export function toolPath(name: string, debianPackage: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim() !== '') return found.stdout.trim();
  const message = `\`${name}\` is not on PATH: install the Debian package \`${debianPackage}\` (.ci/run does).`;
  if (process.env.RECALL_TEST_REQUIRE_TOOLS === '1') throw new Error(message);
  console.warn(`SKIPPED: ${message}`);
  return undefined;
}

export function toolAvailable(name: string, debianPackage: string): boolean {
  return toolPath(name, debianPackage) !== undefined;
}
