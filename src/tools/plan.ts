// The order a batch must keep: explicit `depends_on` edges plus write barriers. A write waits for every call listed
// before it and every call listed after it waits for the write, unless an explicit edge already says the reverse.
// A cycle is a 400 before anything runs.
import { RecallError } from '../openai/errors.js';

export interface PlanInput {
  id: string;
  access: 'read' | 'write';
  /** Explicit dependencies, as indices. */
  dependsOn: readonly number[];
}

/** For each call, the indices it waits for (explicit and barrier edges together), sorted. */
export type WaitList = readonly (readonly number[])[];

export function planOrder(calls: readonly PlanInput[], form: 'calls' | 'tool_calls' = 'calls'): WaitList {
  assertAcyclic(calls, calls.map((c) => c.dependsOn), form, false);
  const ancestors = explicitAncestors(calls);
  const waits = calls.map((c) => new Set(c.dependsOn));
  calls.forEach((call, w) => {
    if (call.access !== 'write') return;
    for (let j = 0; j < calls.length; j++) {
      if (j === w) continue;
      // An explicit edge the other way wins: a read listed first may still explicitly need the write's effect.
      if (j < w && !ancestors[j]!.has(w)) waits[w]!.add(j);
      if (j > w && !ancestors[w]!.has(j)) waits[j]!.add(w);
    }
  });
  const list = waits.map((set) => [...set].sort((a, b) => a - b));
  assertAcyclic(calls, list, form, true);
  return list;
}

/** ancestors[i]: every call i depends on, directly or not, through explicit edges. */
function explicitAncestors(calls: readonly PlanInput[]): Set<number>[] {
  const memo: (Set<number> | undefined)[] = [];
  const of = (i: number): Set<number> => {
    const known = memo[i];
    if (known !== undefined) return known;
    const set = new Set<number>();
    memo[i] = set;
    for (const dep of calls[i]!.dependsOn) {
      set.add(dep);
      for (const further of of(dep)) set.add(further);
    }
    return set;
  };
  return calls.map((_c, i) => of(i));
}

function assertAcyclic(calls: readonly PlanInput[], edges: readonly (readonly number[])[], form: string, withBarriers: boolean): void {
  const state = new Array<0 | 1 | 2>(calls.length).fill(0);
  const stack: number[] = [];
  const visit = (i: number): void => {
    state[i] = 1;
    stack.push(i);
    for (const dep of edges[i]!) {
      if (state[dep] === 1) {
        const members = stack.slice(stack.indexOf(dep));
        // Told from the first call of the cycle in input order, which names the field.
        const first = members.indexOf(Math.min(...members));
        const ordered = [...members.slice(first), ...members.slice(0, first)];
        const cycle = [...ordered, ordered[0]!].map((k) => calls[k]!.id);
        const at = ordered[0]!;
        const how = withBarriers ? ' (counting the write barriers: a write waits for the calls listed before it, later calls wait for the write)' : '';
        throw new RecallError('dependencyCycle', `${form}[${at}].depends_on: the calls depend on each other in a cycle${how}: ${cycle.join(' waits for ')}.`, `${form}[${at}].depends_on`);
      }
      if (state[dep] === 0) visit(dep);
    }
    stack.pop();
    state[i] = 2;
  };
  for (let i = 0; i < calls.length; i++) if (state[i] === 0) visit(i);
}
