"use strict";
// Partition keys: a container's key paths, a document's key values, the request header.
const { lib } = require("./stock");

const { default: getValue } = lib("utils/get-value");

const HEADER = "x-ms-documentdb-partitionkey";

// Key paths as segment lists (/a/b -> ["a", "b"]). "/_partitionKey" is how legacy
// non-partitioned containers say "no key".
function keyPaths(meta) {
  const paths = (meta && meta.partitionKey && meta.partitionKey.paths) || [];
  return paths.filter((p) => p !== "/_partitionKey").map((p) => p.slice(1).split("/"));
}

function keyValues(paths, doc) {
  return paths.map((p) => getValue(p, doc));
}

// One string per logical partition. A missing value becomes {} (what SDKs send for "no
// partition key value"), so it does not collide with an explicit null.
function partitionId(values) {
  return JSON.stringify(values.map((v) => (v === undefined ? {} : v)));
}

// The partition key header: null when absent, { values } (a missing component as
// undefined), or { error } when it is not JSON.
function headerValues(req) {
  const raw = req.headers[HEADER];
  const header = Array.isArray(raw) ? raw[0] : raw;
  if (!header) return null;
  let parsed;
  try {
    parsed = JSON.parse(header);
  } catch (err) {
    return { error: `Invalid partition key header: ${header}` };
  }
  const list = Array.isArray(parsed) ? parsed : [parsed];
  return { values: list.map((v) => (v !== null && typeof v === "object" ? undefined : v)) };
}

// The document `id` in the logical partition `values`, or undefined. The stock store
// indexes a document under its first key value only (and numbers and strings alike), so
// the full key is compared here (extra header components are ignored, as before).
function findDocument(collection, id, values) {
  const data = collection.document(id, values[0]).read();
  if (!data) return undefined;
  const paths = keyPaths(collection.read());
  if (paths.length && partitionId(keyValues(paths, data)) !== partitionId(values.slice(0, paths.length))) {
    return undefined;
  }
  return data;
}

module.exports = { HEADER, keyPaths, keyValues, partitionId, headerValues, findDocument };
