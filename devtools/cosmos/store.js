"use strict";
// Hooks on the stock in-memory store (account/items.js), the one place every write of a
// database, container or document goes through. They keep:
// - an index of each container's documents by logical partition, so a query scoped to one
//   partition reads that partition's documents only;
// - equality indexes on the paths cross-partition queries pin (`c.kind = @kind`) or list
//   values of (`ARRAY_CONTAINS(@ids, c.id)`), so such a query reads the documents matching
//   that term, as Cosmos DB answers it from its index;
// - an undo log while a transactional batch runs, so a failed batch leaves nothing behind;
// - the journal of committed writes (persistence.js), when the launcher keeps its data;
// - each stored document known as stored, so its JSON text is reused (render.js).
const { lib } = require("./stock");
const { keyPaths, keyValues, partitionId } = require("./partition");
const { keepStored } = require("./render");

const { default: getValue } = lib("utils/get-value");

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
  keepStored(data);
  for (const index of fieldIndexes(documents).values()) fieldAdd(index, data);
  const byPartition = partitions(documents);
  const pid = partitionId(keyValues(documents._keyPaths, data));
  let docs = byPartition.get(pid);
  if (!docs) byPartition.set(pid, (docs = new Map()));
  docs.set(data._rid, data);
}

function indexRemove(documents, data) {
  for (const index of fieldIndexes(documents).values()) fieldRemove(index, data._rid);
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

// --- Documents by the value of one path -----------------------------------------------

const MAX_FIELD_INDEXES = 8; // per container: the few paths its queries pin

function fieldIndexes(documents) {
  if (!documents._fields) documents._fields = new Map();
  return documents._fields;
}

// Cosmos DB's `=` tells types apart ("1" is not 1) and never matches an object or a
// missing value: JSON text of a scalar is such a key.
function scalarKey(value) {
  return value === undefined || (value !== null && typeof value === "object") ? undefined : JSON.stringify(value);
}

function fieldAdd(index, data) {
  fieldRemove(index, data._rid);
  const key = scalarKey(getValue(index.path, data));
  if (key === undefined) return;
  let docs = index.byValue.get(key);
  if (!docs) index.byValue.set(key, (docs = new Map()));
  docs.set(data._rid, data);
  index.keyOf.set(data._rid, key);
  index.inOrder.delete(key);
}

function fieldRemove(index, rid) {
  const key = index.keyOf.get(rid);
  if (key === undefined) return;
  index.keyOf.delete(rid);
  const docs = index.byValue.get(key);
  docs.delete(rid);
  if (docs.size === 0) index.byValue.delete(key);
  index.inOrder.delete(key);
}

// The order the query engine puts rows in when a query has no ORDER BY.
const byRid = (a, b) => (a._rid < b._rid ? -1 : a._rid > b._rid ? 1 : 0);

// The stored documents whose value at `path` (segments) equals `value`, in _rid order (an
// array shared between queries until a write changes it: not to be changed), or null
// when the container keeps no index on that path and may not start another. The index on
// a path is built on its first use and kept by every write after. Keeping each value's
// documents sorted spares the query engine its _rid sort of them on every query.
function documentsWhere(documents, path, value) {
  const indexes = fieldIndexes(documents);
  const name = path.join("/");
  let index = indexes.get(name);
  if (!index) {
    if (indexes.size >= MAX_FIELD_INDEXES) return null;
    index = { path, byValue: new Map(), keyOf: new Map(), inOrder: new Map() };
    for (const data of allDocuments(documents)) fieldAdd(index, data);
    indexes.set(name, index);
  }
  const key = scalarKey(value);
  let sorted = index.inOrder.get(key);
  if (!sorted) {
    const docs = index.byValue.get(key);
    if (!docs) return [];
    sorted = [...docs.values()].sort(byRid);
    index.inOrder.set(key, sorted);
  }
  return sorted;
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
  documentsWhere,
  byRid,
  allDocuments,
  rawSet,
  rawDelete,
  setJournal,
  atomically,
};
