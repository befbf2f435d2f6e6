#!/usr/bin/env node
// Local Cosmos DB stand-in: @vercel/cosmosdb-server with keep-alive on and its known
// 500s fixed. Dev/test only; it does not check auth (clients still send the emulator key).
//
//   node devtools/cosmos_server.js [--host 127.0.0.1] [--port 8081] [--log-requests]
"use strict";

const path = require("path");

const LIB = path.dirname(require.resolve("@vercel/cosmosdb-server"));
const lib = (name) => require(path.join(LIB, name));

const NOT_FOUND_MESSAGE = "Entity with the specified id does not exist in the system.";

function parseArgs(argv) {
  const args = { host: "127.0.0.1", port: 8081, logRequests: false };
  for (let i = 0; i < argv.length; i += 1) {
    const key = argv[i];
    if (key === "--host") args.host = argv[++i];
    else if (key === "--port" || key === "-p") args.port = Number.parseInt(argv[++i], 10);
    else if (key === "--log-requests") args.logRequests = true;
    else if (key === "--help" || key === "-h") {
      console.log("Usage: cosmos_server.js [--host 127.0.0.1] [--port 8081] [--log-requests]");
      process.exit(0);
    } else {
      console.error(`cosmos: unknown argument ${key}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
    console.error("cosmos: --port needs a number 0..65535");
    process.exit(2);
  }
  return args;
}

function notFound(res) {
  res.statusCode = 404;
  return { code: "NotFound", message: NOT_FOUND_MESSAGE };
}

// --- Fix 1: read-document ---------------------------------------------------------
// The stock handler dereferences the document before checking it exists, so a missing
// document (or a wrong partition key) answers 500; it also compares nested partition
// key paths (/a/b) as flat keys, so those documents are never found. Replaced here,
// before routes.js is loaded, because routes.js captures handlers at load time.
const { default: getPartitionFromHeader, parsePartitionKey } = lib("utils/get-partition-from-header");
const { default: getValue } = lib("utils/get-value");
const { default: trueHeader } = lib("true-header");

function partitionKeyPaths(collection) {
  const paths = (collection.partitionKey && collection.partitionKey.paths) || [];
  return paths
    .filter((p) => p !== "/_partitionKey")
    .map((p) => p.slice(1).split("/"));
}

function readDocument(account, req, res, { dbId, collId, docId }) {
  const collection = account.database(dbId).collection(collId);
  const meta = collection.read();
  if (!meta) return notFound(res);

  const header = getPartitionFromHeader(req);
  const keyPaths = partitionKeyPaths(meta);
  const crossPartition = trueHeader(req, "x-ms-documentdb-query-enablecrosspartition");
  let clientKeys;
  if (!header) {
    clientKeys = [];
  } else {
    try {
      const parsed = JSON.parse(header);
      // "[{}]" is what SDKs send for "no partition key value" (documents lacking the key)
      clientKeys = (Array.isArray(parsed) ? parsed : [parsed]).map((v) =>
        v !== null && typeof v === "object" ? undefined : v,
      );
    } catch (err) {
      res.statusCode = 400;
      return { code: "BadRequest", message: `Invalid partition key header: ${header}` };
    }
  }
  if (!crossPartition && keyPaths.length > clientKeys.length) {
    res.statusCode = 400;
    return {
      code: "BadRequest",
      message:
        "The partition key supplied in x-ms-partitionkey header has fewer components than defined in the collection",
    };
  }

  const partition = header ? parsePartitionKey(header, docId) : docId;
  const data = collection.document(docId, partition).read();
  if (!data) return notFound(res);
  if (!crossPartition) {
    for (let i = 0; i < keyPaths.length; i += 1) {
      if (getValue(keyPaths[i], data) !== clientKeys[i]) return notFound(res);
    }
  }
  res.statusCode = 200;
  return data;
}

lib("handler/read-document").default = readDocument;

// --- Fix 3: patch filter predicates keep their case ----------------------------------
// The stock server lower-cases the whole condition ("FROM c WHERE c.customerVersion < 2"
// becomes "... c.customerversion ..."), so any camelCase property is undefined and the
// predicate is wrong. Rewritten here into the full query form, case intact; the server
// uses a condition that contains SELECT as is (and binds @id to the document id).
//
// --- Rule: what Cosmos DB refuses in a patch ------------------------------------------
// The service refuses a patch of `id` or of the partition-key path (neither can change in
// place) and a patch of more than 10 operations; the stock server applies all of them.
const MAX_PATCH_OPERATIONS = 10;
const patchOperations = lib("handler/_patch-operations");
const stockPatchOperation = patchOperations.patchOperation;

function refusedPatch(collection, operations) {
  if (operations.length > MAX_PATCH_OPERATIONS) {
    return `A patch may have at most ${MAX_PATCH_OPERATIONS} operations; this one has ${operations.length}.`;
  }
  const meta = collection.read();
  const immutable = ["/id", ...((meta && meta.partitionKey && meta.partitionKey.paths) || [])];
  for (const { path: target, from } of operations) {
    for (const fixed of immutable) {
      for (const touched of [target, from]) {
        if (typeof touched === "string" && (touched === fixed || touched.startsWith(`${fixed}/`))) {
          return `The patch operation on ${touched} is not allowed: id and the partition key path cannot be patched.`;
        }
      }
    }
  }
  return null;
}

patchOperations.patchOperation = (collection, input) => {
  const refusal = refusedPatch(collection, input.operations || []);
  if (refusal) return { statusCode: 400, body: { code: "BadRequest", message: refusal } };
  const match = typeof input.condition === "string" && /^\s*from\s+c\s+where\s+([\s\S]+)$/i.exec(input.condition);
  const condition = match ? `SELECT * FROM c WHERE c.id = @id AND (${match[1].trim()})` : input.condition;
  return stockPatchOperation(collection, { ...input, condition });
};

// --- Fix 2: error bodies carry Cosmos's codes -------------------------------------
// The stock handlers answer most 404s with an empty body and 409s without a code;
// Cosmos always sends {code: "NotFound" | "Conflict"}, which SDKs and our logs read.
// Wraps whatever handler routes.js picked, at request time.
const routes = lib("routes");
const route = routes.default;
routes.default = (req) => {
  const match = route(req);
  if (!match) return match;
  const [params, handler] = match;
  const wrapped = async (account, request, res, p) => {
    const body = await handler(account, request, res, p);
    const coded = body && typeof body === "object" && body.code;
    if (res.statusCode === 404 && !coded) return notFound(res);
    if (res.statusCode === 409 && !coded) {
      return { code: "Conflict", message: (body && body.message) || "Resource already exists." };
    }
    return body;
  };
  return [params, wrapped];
};

// --- Server -------------------------------------------------------------------------
const { createHttpsServer } = lib("index");

function main() {
  const args = parseArgs(process.argv.slice(2));
  // keepAlive: the stock CLI answers every request with "connection: close", so each
  // SDK call pays a TCP + TLS handshake (~20x slower).
  const server = createHttpsServer({ keepAlive: true });
  // Longer than any client's idle reuse window, so the server rarely closes a pooled
  // connection just as a client sends on it; headersTimeout must exceed it.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;

  if (args.logRequests) {
    server.on("request", (req, res) => {
      const started = process.hrtime.bigint();
      res.on("finish", () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        console.log(`${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms`);
      });
    });
  }

  server.on("error", (err) => {
    if (err.code === "EADDRINUSE") {
      console.error(`cosmos: port ${args.port} on ${args.host} is already in use`);
    } else {
      console.error(`cosmos: ${err.stack || err}`);
    }
    process.exit(1);
  });

  server.listen(args.port, args.host, () => {
    const { port } = server.address();
    const host = args.host.includes(":") ? `[${args.host}]` : args.host;
    console.log(`cosmos: ready at https://${host}:${port}/ (keep-alive, self-signed TLS, in-memory)`);
  });

  const shutdown = (signal) => {
    console.log(`cosmos: ${signal}, stopping`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

main();
