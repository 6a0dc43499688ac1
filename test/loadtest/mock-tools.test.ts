// The mock tools record each call's start and end in order, count calls, echo arguments and fail on demand.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockTools, type MockTools } from '../../loadtest/mock-tools.js';

let tools: MockTools;
beforeAll(async () => {
  tools = await startMockTools();
});
afterAll(async () => {
  await tools.close();
});

describe('mock tools', () => {
  it('echoes JSON arguments and query parameters, and records start and end', async () => {
    const posted = await fetch(tools.toolUrl('echo'), { method: 'POST', body: JSON.stringify({ label: 'p', x: 1 }) });
    expect(await posted.json()).toMatchObject({ tool: 'echo', args: { label: 'p', x: 1 }, n: 1 });
    const got = await fetch(`${tools.toolUrl('echo')}?label=g`);
    expect(await got.json()).toMatchObject({ args: { label: 'g' }, n: 2 });
    expect(tools.events.map((e) => `${e.event} ${e.label}`)).toEqual(['start p', 'end p', 'start g', 'end g']);
    expect(tools.calls('echo')).toBe(2);
  });

  it('fails with the configured status and overlaps concurrent calls', async () => {
    tools.reset();
    tools.behave('bad', { failStatus: 503 });
    expect((await fetch(tools.toolUrl('bad'), { method: 'POST' })).status).toBe(503);
    tools.behave('slow', { latencyMs: 200 });
    await Promise.all(['a', 'b'].map((label) => fetch(tools.toolUrl('slow'), { method: 'POST', body: JSON.stringify({ label }) }).then((r) => r.text())));
    expect(tools.peakInFlight()).toBe(2);
  });
});
