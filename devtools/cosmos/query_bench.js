#!/usr/bin/env node
"use strict";
// Server-side cost of one cross-partition query in the stand-in, per returned document:
// the query handler as the launcher installs it, then the response bytes as the launcher
// renders them (render.js), with no network or TLS in the way. devtools/cosmos/bench.py
// measures the same query through the SDK.
//
//   node devtools/cosmos/query_bench.js [--matching 300] [--others 3000] [--runs 300]
//                                       [--page 0]
//
// The documents look like the day-totals the order views keep (a day, ~13 integer
// counters keyed by id, ~6 label maps); the query is the one the stats read uses.
// --page N asks for pages of N items (x-ms-max-item-count) and follows the continuation.
// Run it under `node --cpu-prof` to see where the time goes.
const { Readable } = require("stream");
const crypto = require("crypto");

const { lib } = require("./stock");
require("./store");
const { queryDocuments } = require("./query");
const { jsonBytes } = require("./render");

const QUERY =
  "SELECT c.day, c.counters, c.labels FROM c WHERE c.kind = @totals AND c.day >= @from AND c.day <= @to";

function parseArgs(argv) {
  const args = { matching: 300, others: 3000, runs: 300, page: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in args)) throw new Error(`unknown argument ${argv[i]}`);
    args[key] = Number(argv[i + 1]);
  }
  return args;
}

const uuid = () => crypto.randomUUID();

function day(n) {
  return new Date(Date.UTC(2024, 0, 1) + n * 86_400_000).toISOString().slice(0, 10);
}

function totals(n) {
  const counters = {};
  for (let i = 0; i < 13; i += 1) counters[`units:${uuid()}`] = (n * 31 + i * 7) % 1000;
  const labels = {};
  for (let i = 0; i < 6; i += 1) labels[`label${i}`] = { [`name${(n + i) % 5}`]: n + i };
  return { id: `totals-${n}`, pk: `p${n % 50}`, kind: "totals", day: day(n), counters, labels };
}

function other(n) {
  return { id: `line-${n}`, pk: `p${n % 50}`, kind: "line", day: day(n % 400), qty: n };
}

function request(headers, body) {
  const req = Readable.from([Buffer.from(JSON.stringify(body))]);
  req.headers = headers;
  return req;
}

function response() {
  return {
    statusCode: 200,
    headers: {},
    setHeader(name, value) {
      this.headers[String(name).toLowerCase()] = value;
    },
  };
}

// One query to its last page, as a client reads it: [documents, JSON bytes, pages].
async function runQuery(account, body, page) {
  const documents = [];
  let bytes = 0;
  let pages = 0;
  let continuation = null;
  do {
    const headers = {
      "x-ms-documentdb-isquery": "true",
      "x-ms-documentdb-query-enablecrosspartition": "true",
      "x-ms-documentdb-populatequerymetrics": "true",
    };
    if (page) headers["x-ms-max-item-count"] = String(page);
    if (continuation) headers["x-ms-continuation"] = continuation;
    const res = response();
    const out = await queryDocuments(account, request(headers, body), res, { dbId: "bench", collId: "docs" });
    bytes += jsonBytes(out).length; // what the launcher's request handler sends
    documents.push(...out.Documents);
    pages += 1;
    continuation = res.headers["x-ms-continuation"];
  } while (continuation);
  return [documents, bytes, pages];
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const Account = lib("account").default;
  const account = new Account("127.0.0.1", 0);
  account.databases.create({ id: "bench" });
  account.database("bench").collections.create({ id: "docs", partitionKey: { paths: ["/pk"], kind: "Hash" } });
  const { documents } = account.database("bench").collection("docs");
  const all = [];
  for (let n = 0; n < args.matching; n += 1) all.push(totals(n));
  for (let n = 0; n < args.others; n += 1) all.push(other(n));
  // Parsed from JSON, as request bodies are; a third of the totals rewritten since, as the
  // projections do.
  for (const doc of all.sort(() => Math.random() - 0.5)) documents.create(JSON.parse(JSON.stringify(doc)));
  for (let n = 0; n < args.matching; n += 3) documents.upsert(JSON.parse(JSON.stringify(totals(n))));

  const body = {
    query: QUERY,
    parameters: [
      { name: "@totals", value: "totals" },
      { name: "@from", value: day(0) },
      { name: "@to", value: day(args.matching - 1) },
    ],
  };
  const [first, bytes, pages] = await runQuery(account, body, args.page);
  for (let i = 0; i < 20; i += 1) await runQuery(account, body, args.page); // warm up
  const wall = [];
  const cpu = [];
  for (let i = 0; i < args.runs; i += 1) {
    const started = process.hrtime.bigint();
    const used = process.cpuUsage();
    await runQuery(account, body, args.page);
    const { user, system } = process.cpuUsage(used);
    wall.push(Number(process.hrtime.bigint() - started) / 1000);
    cpu.push(user + system);
  }
  // CPU time as well as wall time: on a shared machine the wall time moves with whatever
  // else runs.
  const median = (times) => times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
  const [wallUs, cpuUs] = [median(wall), median(cpu)];
  const perDoc = (us) => (us / first.length).toFixed(1);
  console.log(
    `${first.length} documents in ${pages} page(s), ${(bytes / 1024).toFixed(0)} KB of JSON; per query ` +
      `(median): ${(wallUs / 1000).toFixed(2)} ms wall, ${(cpuUs / 1000).toFixed(2)} ms CPU; ` +
      `per document: ${perDoc(wallUs)} µs wall, ${perDoc(cpuUs)} µs CPU`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
