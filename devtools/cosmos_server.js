#!/usr/bin/env node
// Local Cosmos DB stand-in: @vercel/cosmosdb-server with keep-alive on, its known bugs
// fixed and the service's rules enforced where the project relies on them. Dev/test only;
// it does not check auth (clients still send the emulator key).
//
//   node devtools/cosmos_server.js [--host 127.0.0.1] [--port 8081] [--data-dir DIR] [--log-requests]
//
// What is patched (the pieces live in devtools/cosmos/):
// - read of a missing document answers 404, not 500; nested partition keys work
//   (read-document.js);
// - queries are linear, not O(container²), and read only the logical partition they are
//   scoped to by the partition key header or a `c.<key> = value` condition; query metrics
//   report the documents read (query.js);
// - patch: refused on `id`/the partition key path or beyond 10 operations; the filter
//   predicate keeps its case and is checked against the one document (patch.js);
// - transactional batch, atomic within one logical partition, at most 100 operations
//   (batch.js; the stock one was neither);
// - error bodies carry Cosmos's codes (below);
// - responses reuse the JSON text of stored documents instead of serialising every
//   returned document again (render.js, and the request handler below);
// - --data-dir keeps the data across restarts (persistence.js); without it, memory only.
"use strict";

const { randomUUID } = require("crypto");
const { lib } = require("./cosmos/stock");
// store.js hooks the stock store: load it before anything is stored.
require("./cosmos/store");
const { readDocument } = require("./cosmos/read-document");
const { queryDocuments } = require("./cosmos/query");
const { patchDocument } = require("./cosmos/patch");
const { batchDocuments } = require("./cosmos/batch");
const { headerValues } = require("./cosmos/partition");
const { DataDir } = require("./cosmos/persistence");
const { jsonBytes } = require("./cosmos/render");

const USAGE =
  "Usage: cosmos_server.js [--host 127.0.0.1] [--port 8081] [--data-dir DIR] [--log-requests]";

function parseArgs(argv) {
  const args = { host: "127.0.0.1", port: 8081, dataDir: null, logRequests: false };
  for (let i = 0; i < argv.length; i += 1) {
    const key = argv[i];
    if (key === "--host") args.host = argv[++i];
    else if (key === "--port" || key === "-p") args.port = Number.parseInt(argv[++i], 10);
    else if (key === "--data-dir") args.dataDir = argv[++i];
    else if (key === "--log-requests") args.logRequests = true;
    else if (key === "--help" || key === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else {
      console.error(`cosmos: unknown argument ${key}\n${USAGE}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
    console.error("cosmos: --port needs a number 0..65535");
    process.exit(2);
  }
  if (args.dataDir === undefined || args.dataDir === "") {
    console.error("cosmos: --data-dir needs a directory");
    process.exit(2);
  }
  return args;
}

// --- Handlers replaced before routes.js loads (it captures them at load time) ----------
lib("handler/read-document").default = readDocument;
lib("handler/query-documents").default = queryDocuments;
lib("handler/batch-documents").default = batchDocuments;
// The stock PATCH handler calls this export at request time, with the raw header.
lib("handler/_patch-operations").patchOperation = (collection, input) => {
  const header = headerValues({ headers: { "x-ms-documentdb-partitionkey": input.partitionKey } });
  if (header && header.error) {
    return { statusCode: 400, body: { code: "BadRequest", message: header.error } };
  }
  return patchDocument(collection, { ...input, values: header ? header.values : [] });
};

// --- Every handler: Cosmos's error codes, and the journal written before the answer -----
// The stock handlers answer most 404s with an empty body and 409s without a code; Cosmos
// always sends {code: "NotFound" | "Conflict"}, which SDKs and our logs read.
let dataDir = null;
const routes = lib("routes");
const route = routes.default;
routes.default = (req) => {
  const match = route(req);
  if (!match) return match;
  const [params, handler] = match;
  const wrapped = async (account, request, res, p) => {
    let body;
    try {
      body = await handler(account, request, res, p);
    } finally {
      if (dataDir) dataDir.flush();
    }
    const coded = body && typeof body === "object" && body.code;
    if (res.statusCode === 404 && !coded) {
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
    if (res.statusCode === 409 && !coded) {
      return { code: "Conflict", message: (body && body.message) || "Resource already exists." };
    }
    return body;
  };
  return [params, wrapped];
};

// The account is created when the server starts listening; with --data-dir it is filled
// from disk right then, before any request is served.
let onAccount = () => {};
let account = null;
const accountModule = lib("account");
const StockAccount = accountModule.default;
accountModule.default = class Account extends StockAccount {
  constructor(...args) {
    super(...args);
    account = this;
    onAccount(this);
  }
};

// --- Server -------------------------------------------------------------------------
const { createHttpsServer } = lib("index");

const QUERY_METRICS =
  "totalExecutionTimeInMs=0.00;queryCompileTimeInMs=0.00;queryLogicalPlanBuildTimeInMs=0.00;" +
  "queryPhysicalPlanBuildTimeInMs=0.00;queryOptimizationTimeInMs=0.00;VMExecutionTimeInMs=0.00;" +
  "indexLookupTimeInMs=0.00;documentLoadTimeInMs=0.00;systemFunctionExecuteTimeInMs=0.00;" +
  "userFunctionExecuteTimeInMs=0.00;retrievedDocumentCount=0;retrievedDocumentSize=0;" +
  "outputDocumentCount=1;outputDocumentSize=0;writeOutputTimeInMs=0.00;indexUtilizationRatio=0.00";

// The stock request handler (index.js, which does not export it), with one change: the
// body is sent as render.js's bytes, not JSON.stringify's text. The same JSON, but the
// stored documents in it are not serialised again on every read and query, and Node
// writes a long string to a TLS socket through a buffer sized for 3 bytes a character,
// which costs more than encoding it beforehand.
function respond(req, res) {
  const match = routes.default(req);
  (async () => {
    let body;
    if (match) {
      const [params, handler] = match;
      try {
        body = await handler(account, req, res, params);
      } catch (err) {
        console.error(err);
        body = { message: err.message };
        res.statusCode = 500;
      }
      if (res.statusCode > 399 && !body.message) body.message = "";
    } else {
      res.statusCode = 400;
      body = { message: "no route" };
    }
    if (body && body._etag) res.setHeader("etag", body._etag);
    res.setHeader("content-type", "application/json");
    res.setHeader("content-location", `https://${req.headers.host}${req.url}`);
    res.setHeader("connection", "keep-alive");
    res.setHeader("x-ms-activity-id", randomUUID());
    res.setHeader("x-ms-request-charge", "1");
    if (req.headers["x-ms-documentdb-populatequerymetrics"]) {
      res.setHeader("x-ms-documentdb-query-metrics", QUERY_METRICS);
    }
    if (req.headers["a-im"] && res.statusCode === 200) {
      if (req.headers["if-none-match"]) res.statusCode = 304;
      res.setHeader("etag", "1");
    }
    res.end(jsonBytes(body));
  })().catch((err) => {
    console.error(err);
    if (!res.writableEnded) {
      res.statusCode = 500;
      res.end("");
    }
  });
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  let restored = "in-memory";
  if (args.dataDir) {
    dataDir = new DataDir(args.dataDir);
    try {
      dataDir.open();
    } catch (err) {
      console.error(`cosmos: ${err.message}`);
      process.exit(1);
    }
    onAccount = (account) => {
      const started = process.hrtime.bigint();
      let counts;
      try {
        counts = dataDir.restore(account);
      } catch (err) {
        console.error(`cosmos: could not restore ${dataDir.dir}: ${err.stack || err}`);
        dataDir.unlock();
        process.exit(1);
      }
      const { databases, containers, documents } = counts;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      restored =
        `data in ${dataDir.dir}: ${databases} database(s), ${containers} container(s), ` +
        `${documents} document(s) restored in ${ms.toFixed(0)} ms`;
    };
  }

  // keepAlive: the stock CLI answers every request with "connection: close", so each
  // SDK call pays a TCP + TLS handshake (~20x slower).
  const server = createHttpsServer({ keepAlive: true });
  // TLS and the account as the stock server sets them up; the answers from respond().
  server.removeAllListeners("request");
  server.on("request", respond);
  // Longer than any client's idle reuse window, so the server rarely closes a pooled
  // connection just as a client sends on it; headersTimeout must exceed it.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;

  if (args.logRequests) {
    server.on("request", (req, res) => {
      const started = process.hrtime.bigint();
      res.on("finish", () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const note = res.standInNote ? ` (${res.standInNote})` : "";
        console.log(`${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms${note}`);
      });
    });
  }

  server.on("error", (err) => {
    if (err.code === "EADDRINUSE") {
      console.error(`cosmos: port ${args.port} on ${args.host} is already in use`);
    } else {
      console.error(`cosmos: ${err.stack || err}`);
    }
    if (dataDir) dataDir.unlock();
    process.exit(1);
  });

  server.listen(args.port, args.host, () => {
    const { port } = server.address();
    const host = args.host.includes(":") ? `[${args.host}]` : args.host;
    console.log(`cosmos: ready at https://${host}:${port}/ (keep-alive, self-signed TLS, ${restored})`);
  });

  let stopping = false;
  const shutdown = (signal) => {
    if (stopping) return;
    stopping = true;
    console.log(`cosmos: ${signal}, stopping`);
    server.close();
    server.closeAllConnections();
    if (dataDir) {
      try {
        dataDir.close();
        console.log(`cosmos: data saved in ${dataDir.dir}`);
      } catch (err) {
        // The journal still holds every answered write; the next start replays it.
        console.error(`cosmos: could not write the snapshot: ${err.message}`);
      }
    }
    process.exit(0);
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

main();
