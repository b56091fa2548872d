#!/usr/bin/env node
// dashboard-metrics: every metric a Grafana dashboard queries exists on a running shoald.
//
//   node deploy/tools/dashboard-metrics.js deploy/grafana/shoal.json http://127.0.0.1:9090/metrics \
//       [http://127.0.0.1:9091/metrics ...]
//
// Several scrapes count as one: a durable shoald exports the log's metrics, a replicated one
// Raft's, and the dashboard has panels for both.
//
// Reads each panel target's PromQL `expr`, takes the metric names in it (a name before `{` or
// `[`, and every grpc_server_*, shoal_* and process_* name), and requires a sample of each in
// the scrape. A dashboard querying a metric that shoald does not export would show an empty
// panel, and nobody would notice. Exit 1 with the missing names; 2 if the check broke.
import { readFileSync } from 'node:fs';

const OURS = /\b(?:grpc_server|shoal|process)_[a-z0-9_]+\b/g;
const SELECTED = /\b[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*[{[])/g;

function queries(dashboard) {
  const out = [];
  const walk = (panels) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) if (typeof t.expr === 'string') out.push([p.title, t.expr]);
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

async function main([dashboardFile, ...urls]) {
  if (!dashboardFile || urls.length === 0) {
    console.error('usage: dashboard-metrics.js DASHBOARD.json METRICS_URL [METRICS_URL ...]');
    return 2;
  }
  const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8'));
  const samples = new Set();
  for (const url of urls) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
    for (const line of (await response.text()).split('\n')) {
      if (line && !line.startsWith('#')) samples.add(line.split(/[{ ]/)[0]);
    }
  }
  const all = queries(dashboard);
  if (all.length === 0) {
    console.log(`${dashboardFile}: no queries`);
    return 1;
  }
  let missing = 0;
  const checked = new Set();
  for (const [panel, expr] of all) {
    for (const name of new Set([...(expr.match(OURS) ?? []), ...(expr.match(SELECTED) ?? [])])) {
      checked.add(name);
      if (!samples.has(name)) {
        console.log(`panel "${panel}": ${name} is not exported by shoald`);
        missing++;
      }
    }
  }
  if (missing === 0) console.log(`${all.length} queries, ${checked.size} metrics: all exported`);
  return missing === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
  console.error(`dashboard-metrics: ${e.message}`);
  process.exit(2);
});
