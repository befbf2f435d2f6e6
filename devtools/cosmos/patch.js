"use strict";
// Patch of one document, as Cosmos DB does it, for PATCH .../docs/{id} and for patch
// operations inside a transactional batch:
// - refused (400) when it touches `id` or the partition-key path (neither can change in
//   place) or has more than 10 operations; the stock server applied all of them;
// - a filter predicate ("FROM c WHERE ...") keeps its case (the stock server lower-cased
//   it, so camelCase properties read as undefined) and is evaluated against the one
//   document (the stock server ran a container query per patch): 412 when it is false.
const { lib } = require("./stock");
const { findDocument } = require("./partition");
const { satisfies } = require("./query");

const MAX_PATCH_OPERATIONS = 10;
const PRECONDITION_FAILED = "Operation cannot be performed because one of the specified precondition is not met.";

const stockPatchOperation = lib("handler/_patch-operations").patchOperation;

function refusal(collection, operations) {
  if (!Array.isArray(operations)) return "Invalid patch request: check syntax of patch specification.";
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

// The patched copy of `doc`, or { error }. Reuses the stock operation semantics
// (add/set/replace/remove/incr/move) by handing the stock function a one-document view
// whose "replace" captures the result instead of storing it.
function applyOperations(doc, operations) {
  let patched;
  const view = {
    document: () => ({ read: () => doc }),
    documents: { replace: (data) => (patched = data) },
  };
  const result = stockPatchOperation(view, { id: doc.id, partitionKey: "[null]", operations });
  if (result.statusCode !== 200) return { error: (result.body && result.body.message) || "Invalid patch." };
  return { patched };
}

const fail = (statusCode, code, message) => ({ statusCode, body: { code, message } });

// input: { id, values (the partition key), ifMatch, operations, condition }
// -> { statusCode, body }; the document is stored (new _etag and _ts) on 200.
function patchDocument(collection, input) {
  const refused = refusal(collection, input.operations);
  if (refused) return fail(400, "BadRequest", refused);
  const data = findDocument(collection, input.id, input.values);
  if (!data) return fail(404, "NotFound", "Entity with the specified id does not exist in the system.");
  if (input.ifMatch && input.ifMatch !== data._etag) return fail(412, "PreconditionFailed", PRECONDITION_FAILED);
  if (input.condition) {
    let ok;
    try {
      ok = satisfies(input.condition, data);
    } catch (err) {
      return fail(400, "BadRequest", `Invalid condition in patch request: ${err.message}`);
    }
    if (!ok) return fail(412, "PreconditionFailed", "Condition specified in the patch request is not satisfied.");
  }
  const { patched, error } = applyOperations(data, input.operations);
  if (error) return fail(400, "BadRequest", error);
  try {
    return { statusCode: 200, body: collection.documents.replace(patched, data) };
  } catch (err) {
    if (err.badRequest) return fail(400, "BadRequest", err.message);
    if (err.conflict) return fail(409, "Conflict", err.message);
    throw err;
  }
}

module.exports = { patchDocument, PRECONDITION_FAILED };
