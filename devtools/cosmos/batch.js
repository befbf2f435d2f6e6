"use strict";
// Transactional batch: POST .../docs with x-ms-cosmos-is-batch-request, a JSON array of
// operations (operationType Create/Upsert/Replace/Delete/Read/Patch, id, resourceBody,
// ifMatch/ifNoneMatch). Replaces the stock handler, which was neither atomic nor complete.
// The service's rules, as the SDKs see them:
// - every operation runs in the logical partition named by the partition key header; an
//   operation whose document carries another key fails with 400;
// - no operations, or more than 100: the request fails with 400; over 2 MB: 413;
// - atomic (x-ms-cosmos-batch-atomic, which SDKs always send): when an operation fails,
//   no operation's effect remains and the response is 207 Multi-Status with the failing
//   operation's status and 424 (Failed Dependency) for every other one; SDKs raise an
//   error carrying the failing operation's status and index. All succeed: 200. Without
//   that header (bulk), each operation stands alone.
// - each operation honours its own ifMatch (412) and, on reads, ifNoneMatch (304); a patch
//   obeys the rules of a single patch (patch.js).
const { lib, dependency } = require("./stock");
const { keyPaths, keyValues, partitionId, headerValues, findDocument } = require("./partition");
const { patchDocument, PRECONDITION_FAILED } = require("./patch");
const { atomically } = require("./store");

const rawBody = dependency("raw-body");
const trueHeader = lib("true-header").default;

const MAX_OPERATIONS = 100;
const MAX_REQUEST_BYTES = 2 * 1024 * 1024;
const WRONG_PARTITION_KEY =
  "Partition key provided either doesn't correspond to definition in the collection or doesn't match partition key field values specified in the document.";

const result = (statusCode, body) => ({ statusCode, body });
const failure = (statusCode, code, message) => ({ statusCode, error: { code, message } });
const notFound = () => failure(404, "NotFound", "Entity with the specified id does not exist in the system.");
const preconditionFailed = () => failure(412, "PreconditionFailed", PRECONDITION_FAILED);

// A failed ifMatch / ifNoneMatch of a write against the stored document.
function preconditionFails(op, stored) {
  if (op.ifMatch && op.ifMatch !== stored._etag) return true;
  if (op.ifNoneMatch && (op.ifNoneMatch === "*" || op.ifNoneMatch === stored._etag)) return true;
  return false;
}

// Runs one operation against the store; { statusCode, body } or { statusCode, error }.
function execute(collection, values, op) {
  const { documents } = collection;
  const paths = keyPaths(collection.read());
  const type = String((op && op.operationType) || "").toLowerCase();
  const body = op && op.resourceBody;
  const writesBody = type === "create" || type === "upsert" || type === "replace";
  if (writesBody) {
    if (!body || typeof body !== "object" || typeof body.id !== "string" || !body.id) {
      return failure(400, "BadRequest", "The document needs a string id.");
    }
    if (partitionId(keyValues(paths, body)) !== partitionId(values)) {
      return failure(400, "BadRequest", WRONG_PARTITION_KEY);
    }
  }
  try {
    switch (type) {
      case "create":
        return result(201, documents.create(body));
      case "upsert": {
        // Replace semantics when the document exists, create semantics (preconditions
        // ignored) when it does not, as the service does.
        const stored = findDocument(collection, body.id, values);
        if (stored && preconditionFails(op, stored)) return preconditionFailed();
        return stored ? result(200, documents.replace(body, stored)) : result(201, documents.create(body));
      }
      case "replace": {
        if (op.id !== undefined && op.id !== body.id) {
          return failure(400, "BadRequest", "The id of the replacement differs from the id replaced.");
        }
        const stored = findDocument(collection, body.id, values);
        if (!stored) return notFound();
        if (preconditionFails(op, stored)) return preconditionFailed();
        return result(200, documents.replace(body, stored));
      }
      case "delete": {
        const stored = findDocument(collection, op.id, values);
        if (!stored) return notFound();
        if (preconditionFails(op, stored)) return preconditionFailed();
        documents.delete(stored.id, values[0]);
        return result(204, undefined);
      }
      case "read": {
        const stored = findDocument(collection, op.id, values);
        if (!stored) return notFound();
        if (op.ifNoneMatch && (op.ifNoneMatch === "*" || op.ifNoneMatch === stored._etag)) return result(304, undefined);
        return result(200, stored);
      }
      case "patch": {
        const patch = body || {};
        const outcome = patchDocument(collection, {
          id: op.id,
          values,
          ifMatch: op.ifMatch,
          operations: patch.operations,
          condition: patch.condition,
        });
        return outcome.statusCode < 400 ? outcome : failure(outcome.statusCode, outcome.body.code, outcome.body.message);
      }
      default:
        return failure(400, "BadRequest", `Operation type '${op && op.operationType}' is not supported in a batch.`);
    }
  } catch (err) {
    if (err.conflict) return failure(409, "Conflict", err.message);
    if (err.badRequest) return failure(400, "BadRequest", err.message);
    throw err;
  }
}

function requestError(res, statusCode, code, message) {
  res.statusCode = statusCode;
  return { code, message };
}

async function batchDocuments(account, req, res, { dbId, collId }) {
  const raw = await rawBody(req);
  if (raw.length > MAX_REQUEST_BYTES) {
    return requestError(res, 413, "RequestEntityTooLarge", "Request size is too large.");
  }
  let operations;
  try {
    operations = JSON.parse(raw.toString("utf8"));
  } catch (err) {
    return requestError(res, 400, "BadRequest", `The batch is not valid JSON: ${err.message}`);
  }
  const collection = account.database(dbId).collection(collId);
  const meta = collection.read();
  if (!meta) return requestError(res, 404, "NotFound", "Resource Not Found");
  if (!Array.isArray(operations)) return requestError(res, 400, "BadRequest", "A batch is an array of operations.");
  if (operations.length === 0) return requestError(res, 400, "BadRequest", "Batch request has no operations.");
  if (operations.length > MAX_OPERATIONS) {
    return requestError(res, 400, "BadRequest", "Batch request has more operations than what is supported.");
  }
  const paths = keyPaths(meta);
  const header = headerValues(req) || { values: [] };
  if (header.error || header.values.length !== paths.length) {
    return requestError(res, 400, "BadRequest", WRONG_PARTITION_KEY);
  }

  const atomic = trueHeader(req, "x-ms-cosmos-batch-atomic");
  const continueOnError = !atomic && trueHeader(req, "x-ms-cosmos-batch-continue-on-error");
  const run = () => {
    const results = [];
    let failed = -1;
    for (const op of operations) {
      if (failed >= 0 && !continueOnError) break;
      const outcome = execute(collection, header.values, op);
      if (outcome.error && failed < 0) failed = results.length;
      results.push(outcome);
    }
    return { commit: failed < 0, failed, results };
  };
  const { failed, results } = atomic ? atomically(run) : run();

  res.statusCode = failed < 0 ? 200 : 207;
  if (failed >= 0) {
    // The wire format has no room for why; the request log (--log-requests) shows it.
    const { statusCode, error } = results[failed];
    res.standInNote = `operation ${failed} failed: ${statusCode} ${error.code}: ${error.message}`;
  }
  return operations.map((op, i) => {
    const outcome = results[i];
    if (!outcome || (atomic && failed >= 0 && i !== failed)) return { statusCode: 424, requestCharge: 0 };
    if (outcome.error) return { statusCode: outcome.statusCode, requestCharge: 0 };
    const response = { statusCode: outcome.statusCode, requestCharge: 1 };
    if (outcome.body) {
      response.eTag = outcome.body._etag;
      response.resourceBody = outcome.body;
    }
    return response;
  });
}

module.exports = { batchDocuments, MAX_OPERATIONS };
