// The eight Nelson rules: names, colours and plain-words explanations (default parameters).
// The API's `rule_text` wins when it is present, since it carries the configured parameters.

export interface RuleInfo {
  n: number;
  name: string;
  color: string;
  text: string;
}

export const RULES: RuleInfo[] = [
  { n: 1, name: 'beyond limits', color: '#dc2626', text: 'A point is more than 3σ from the centre line — something unusual happened to this one call.' },
  { n: 2, name: 'run on one side', color: '#ea580c', text: '9 points in a row on the same side of the centre line — the process mean has shifted.' },
  { n: 3, name: 'trend', color: '#ca8a04', text: '6 points in a row steadily rising or falling — the process is drifting.' },
  { n: 4, name: 'alternation', color: '#16a34a', text: '14 points in a row alternating up and down — two sources are taking turns (e.g. two replicas behind a load balancer).' },
  { n: 5, name: '2 of 3 beyond 2σ', color: '#0891b2', text: '2 of the last 3 points more than 2σ from the centre on the same side — a shift is likely starting.' },
  { n: 6, name: '4 of 5 beyond 1σ', color: '#2563eb', text: '4 of the last 5 points more than 1σ from the centre on the same side — a small sustained shift.' },
  { n: 7, name: 'stratification', color: '#7c3aed', text: '15 points in a row within 1σ of the centre — less variation than the baseline: the limits may be stale or the data is being smoothed.' },
  { n: 8, name: 'mixture', color: '#db2777', text: '8 points in a row more than 1σ from the centre — the data looks like a mixture of two different processes.' },
];

export function rule(n: number): RuleInfo {
  return RULES[n - 1] ?? { n, name: `rule ${n}`, color: '#6b7280', text: `Nelson rule ${n} fired.` };
}

/** The most telling rule of a set: the lowest number. */
export function primaryRule(rules: number[]): number {
  return rules.length ? Math.min(...rules) : 0;
}
