"use strict";
// GET .../docs/{id}. The stock handler dereferences the document before checking it
// exists, so a missing document (or a wrong partition key) answered 500; it also compared
// nested partition key paths (/a/b) as flat keys, so those documents were never found.
const { lib } = require("./stock");
const { keyPaths, headerValues, findDocument } = require("./partition");

const trueHeader = lib("true-header").default;

function notFound(res) {
  res.statusCode = 404;
  return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
}

function readDocument(account, req, res, { dbId, collId, docId }) {
  const collection = account.database(dbId).collection(collId);
  const meta = collection.read();
  if (!meta) return notFound(res);

  const header = headerValues(req) || { values: [] };
  if (header.error) {
    res.statusCode = 400;
    return { code: "BadRequest", message: header.error };
  }
  if (trueHeader(req, "x-ms-documentdb-query-enablecrosspartition")) {
    // A read across partitions: the id alone (as the stock store indexes it).
    const data = collection.document(docId, header.values[0]).read();
    if (!data) return notFound(res);
    res.statusCode = 200;
    return data;
  }
  if (keyPaths(meta).length > header.values.length) {
    res.statusCode = 400;
    return {
      code: "BadRequest",
      message:
        "The partition key supplied in x-ms-partitionkey header has fewer components than defined in the collection",
    };
  }
  const data = findDocument(collection, docId, header.values);
  if (!data) return notFound(res);
  res.statusCode = 200;
  return data;
}

module.exports = { readDocument };
