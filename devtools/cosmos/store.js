"use strict";
// Hooks on the stock in-memory store (account/items.js), the one place every write of a
// database, container or document goes through. They keep:
// - an index of each container's documents by logical partition, so a query scoped to one
//   partition reads that partition's documents only;
// - an undo log while a transactional batch runs, so a failed batch leaves nothing behind;
// - the journal of committed writes (persistence.js), when the launcher keeps its data.
const { lib } = require("./stock");
const { keyPaths, keyValues, partitionId } = require("./partition");

const Items = lib("account/items").default;
const Databases = lib("account/databases").default;
const Collections = lib("account/collections").default;
const Documents = lib("account/documents").default;
const UserDefinedFunctions = lib("account/user-defined-functions").default;

const stockSet = Items.prototype._set;
const stockDelete = Items.prototype.delete;
const stockNewCollection = Collections.prototype._newItem;

// What the journal calls each kind of container (partition key ranges are derived, not kept).
Databases.prototype._kind = "db";
Collections.prototype._kind = "coll";
Documents.prototype._kind = "doc";
UserDefinedFunctions.prototype._kind = "udf";

// A collection does not know its database; the journal needs both names.
Collections.prototype._newItem = function newCollection(data) {
  const collection = stockNewCollection.call(this, data);
  collection._database = this._parent;
  return collection;
};

// Where a container lives: [] for databases, [db] for collections, [db, coll] for the rest.
function location(container) {
  if (container._kind === "db") return [];
  if (container._kind === "coll") return [container._parent.read().id];
  return [container._parent._database.read().id, container._parent.read().id];
}

// --- Documents by logical partition ---------------------------------------------------

function partitions(documents) {
  if (!documents._partitions) {
    documents._partitions = new Map();
    documents._keyPaths = keyPaths(documents._parent.read());
  }
  return documents._partitions;
}

function indexAdd(documents, data) {
  const byPartition = partitions(documents);
  const pid = partitionId(keyValues(documents._keyPaths, data));
  let docs = byPartition.get(pid);
  if (!docs) byPartition.set(pid, (docs = new Map()));
  docs.set(data._rid, data);
}

function indexRemove(documents, data) {
  const byPartition = partitions(documents);
  const pid = partitionId(keyValues(documents._keyPaths, data));
  const docs = byPartition.get(pid);
  if (!docs) return;
  docs.delete(data._rid);
  if (docs.size === 0) byPartition.delete(pid);
}

// The stored documents of one logical partition (an array, no copies).
function documentsIn(documents, pid) {
  const docs = partitions(documents).get(pid);
  return docs ? [...docs.values()] : [];
}

function allDocuments(documents) {
  const out = [];
  for (const item of documents._data.values()) out.push(item.read());
  return out;
}

// --- Writes without journal or undo (replay, rollback) --------------------------------

function rawSet(container, data) {
  stockSet.call(container, data);
  if (container._kind === "doc") indexAdd(container, data);
}

function rawDelete(container, data) {
  stockDelete.call(container, data._rid, undefined);
  if (container._kind === "doc") indexRemove(container, data);
}

// --- Journal and undo log -------------------------------------------------------------

let journal = null; // { record(entry), mark(), truncate(mark) } when data is kept
let transaction = null;

function setJournal(sink) {
  journal = sink;
}

function remember(container, data) {
  if (!transaction) return;
  const key = container._getId("/id", data.id, container._getPartition(data));
  let seen = transaction.seen.get(container);
  if (!seen) transaction.seen.set(container, (seen = new Set()));
  if (seen.has(key)) return;
  seen.add(key);
  const rid = container._index.get(key);
  const item = rid !== undefined && container._data.get(rid);
  transaction.undo.push({ container, key, original: item ? item.read() : undefined });
}

Items.prototype._set = function setItem(data) {
  if (!this._kind) return stockSet.call(this, data);
  remember(this, data);
  const stored = stockSet.call(this, data);
  if (this._kind === "doc") indexAdd(this, data);
  if (journal) journal.record({ o: "put", k: this._kind, at: location(this), n: this._ridCount, d: data });
  return stored;
};

Items.prototype.delete = function deleteItem(idOrRid, partition) {
  if (!this._kind) return stockDelete.call(this, idOrRid, partition);
  const data = this._item("/id", idOrRid, partition).read();
  if (data) remember(this, data);
  const result = stockDelete.call(this, idOrRid, partition); // throws when absent
  if (this._kind === "doc") indexRemove(this, data);
  if (journal) journal.record({ o: "del", k: this._kind, at: location(this), rid: data._rid });
  return result;
};

// Runs `fn` (synchronous: nothing else can interleave) so that its writes all stay or
// all go. `fn` returns an object; its writes stay when that object's `commit` is true.
function atomically(fn) {
  if (transaction) throw new Error("transactions do not nest");
  const mark = journal ? journal.mark() : 0;
  transaction = { undo: [], seen: new Map() };
  let commit = false;
  try {
    const result = fn();
    commit = Boolean(result && result.commit);
    return result;
  } finally {
    const { undo } = transaction;
    transaction = null;
    if (!commit) {
      for (const { container, key, original } of undo) {
        const rid = container._index.get(key);
        const item = rid !== undefined && container._data.get(rid);
        if (item) rawDelete(container, item.read());
        if (original) rawSet(container, original);
      }
      if (journal) journal.truncate(mark);
    }
  }
}

module.exports = {
  location,
  documentsIn,
  allDocuments,
  rawSet,
  rawDelete,
  setJournal,
  atomically,
};
