// Reads /metrics the way Prometheus does, for tests that assert a metric's value.

/** The value of the first sample of `name` whose labels include `labels`; 0 when there is none. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

export async function scrape(recallUrl: string): Promise<string> {
  return (await fetch(`${recallUrl}/metrics`)).text();
}
