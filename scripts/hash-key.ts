// Prints the `hash` to write into auth.keys for an API key: `npm run hash-key -- <key>`, or the key on stdin
// (`printf %s "$KEY" | npm run -s hash-key`) so that it stays out of the shell history.
import { readFileSync } from 'node:fs';
import { hashClientKey } from '../src/limits/limit-settings.js';

const key = process.argv[2] ?? readFileSync(0, 'utf8').trim();
if (key === '') {
  process.stderr.write('usage: npm run hash-key -- <key>   (or the key on stdin)\n');
  process.exit(2);
}
process.stdout.write(`${hashClientKey(key)}\n`);
