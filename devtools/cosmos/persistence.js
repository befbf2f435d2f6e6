"use strict";
// --data-dir DIR: the stand-in keeps its databases, containers and documents (with their
// _rid, _etag and _ts) across restarts, so a local stack with a long history comes back
// in a moment instead of rebuilding its read model.
//
//   DIR/snapshot.jsonl     the whole store; its first line names the journal that follows it
//   DIR/journal-<N>.jsonl  every write committed since: one line (a JSON array of entries)
//                          per request, so a batch replays whole; appended before the
//                          response is sent. No fsync: what a killed launcher wrote is in
//                          the OS page cache and survives; power loss is out of scope here.
//   DIR/lock               the pid of the launcher using DIR; a second one refuses to start
//
// On start, snapshot + journal are replayed (a last line cut short by a kill is dropped:
// its request was never answered) and compacted into a new snapshot; the same on a
// graceful stop and whenever the journal outgrows the snapshot.
const fs = require("fs");
const path = require("path");
const { rawSet, rawDelete, setJournal } = require("./store");

const FORMAT = "cosmosdb-stand-in";
const VERSION = 1;
const ENTRIES_PER_SNAPSHOT_LINE = 256;
const MIN_COMPACT_BYTES = 64 * 1024 * 1024;
const NEWLINE = 0x0a;

function writeAll(fd, text) {
  const buffer = Buffer.from(text, "utf8");
  let written = 0;
  while (written < buffer.length) written += fs.writeSync(fd, buffer, written, buffer.length - written);
  return buffer.length;
}

// The JSON lines of `file`. A last line without its newline is a write cut short: dropped
// when `cutTail` allows it (the journal), an error otherwise.
function readLines(file, cutTail) {
  const buffer = fs.readFileSync(file);
  const lines = [];
  let start = 0;
  while (start < buffer.length) {
    const end = buffer.indexOf(NEWLINE, start);
    if (end < 0) {
      if (cutTail) {
        console.log(`cosmos: ${file}: dropped a last line cut short (${buffer.length - start} bytes)`);
        break;
      }
      throw new Error(`${file} ends in an unfinished line`);
    }
    if (end > start) {
      try {
        lines.push(JSON.parse(buffer.toString("utf8", start, end)));
      } catch (err) {
        throw new Error(`${file}: line ${lines.length + 1} is damaged (${err.message})`);
      }
    }
    start = end + 1;
  }
  return { lines, bytes: buffer.length };
}

function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return err.code === "EPERM";
  }
  try {
    // A killed launcher not yet reaped by its parent is a zombie: signalable, but gone.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch (err) {
    return true; // no /proc (not Linux): trust the signal
  }
}

function defineFunction(body) {
  // How the stock server turns a stored UDF body into a function.
  return new Function(`"use strict";return (${body})`)(); // eslint-disable-line no-new-func
}

// The container an entry writes to: databases, a database's collections, a collection's
// documents or UDFs; null when its parent is gone.
function containerAt(account, kind, at) {
  if (kind === "db") return account.databases;
  const database = account.database(at[0]);
  if (!database.read()) return null;
  if (kind === "coll") return database.collections;
  const collection = database.collection(at[1]);
  if (!collection.read()) return null;
  if (kind === "doc") return collection.documents;
  if (kind === "udf") return collection.userDefinedFunctions;
  return null;
}

// Entries: { o: "put", k, at, d, n? } stores d (a put of a stored _rid replaces it),
// { o: "del", k, at, rid } removes, { o: "n", k, at, n } restores the _rid counter.
// `containers` caches containerAt between entries (cleared when a database or collection
// changes).
function applyEntry(account, entry, containers) {
  const at = entry.at || [];
  const key = `${entry.k}/${at.join("/")}`;
  let container = containers.get(key);
  if (container === undefined) {
    container = containerAt(account, entry.k, at);
    containers.set(key, container);
  }
  if (entry.k === "db" || entry.k === "coll") containers.clear();
  if (!container) return;
  if (entry.n > container._ridCount) container._ridCount = entry.n;
  if (entry.o === "n") return;
  const existing = container._data.get(entry.o === "put" ? entry.d._rid : entry.rid);
  if (existing) {
    const data = existing.read();
    rawDelete(container, data);
    if (entry.k === "udf") delete container.functions[data.id];
  }
  if (entry.o === "put") {
    rawSet(container, entry.d);
    if (entry.k === "udf") container.functions[entry.d.id] = defineFunction(entry.d.body);
  }
}

function* snapshotEntries(account) {
  const { databases } = account;
  yield { o: "n", k: "db", at: [], n: databases._ridCount };
  for (const database of databases._data.values()) {
    const db = database.read();
    yield { o: "put", k: "db", at: [], d: db };
    yield { o: "n", k: "coll", at: [db.id], n: database.collections._ridCount };
    for (const collection of database.collections._data.values()) {
      const coll = collection.read();
      const at = [db.id, coll.id];
      yield { o: "put", k: "coll", at: [db.id], d: coll };
      for (const [k, container] of [
        ["udf", collection.userDefinedFunctions],
        ["doc", collection.documents],
      ]) {
        yield { o: "n", k, at, n: container._ridCount };
        for (const item of container._data.values()) yield { o: "put", k, at, d: item.read() };
      }
    }
  }
}

function count(account) {
  let containers = 0;
  let documents = 0;
  for (const database of account.databases._data.values()) {
    for (const collection of database.collections._data.values()) {
      containers += 1;
      documents += collection.documents._data.size;
    }
  }
  return { databases: account.databases._data.size, containers, documents };
}

class DataDir {
  constructor(dir) {
    this.dir = path.resolve(dir);
    this.account = null;
    this.pending = []; // entries of writes not yet in the journal
    this.fd = null;
    this.generation = 0;
    this.journalBytes = 0;
    this.snapshotBytes = 0;
    this.loaded = null;
    this.journalFound = false;
    this.locked = false;
  }

  get snapshotPath() {
    return path.join(this.dir, "snapshot.jsonl");
  }

  journalPath(generation) {
    return path.join(this.dir, `journal-${generation}.jsonl`);
  }

  // Takes the lock and reads the directory; before the server listens, so a damaged or
  // busy directory stops the launch.
  open() {
    fs.mkdirSync(this.dir, { recursive: true });
    this.lock();
    this.loaded = [];
    if (fs.existsSync(this.snapshotPath)) {
      const { lines, bytes } = readLines(this.snapshotPath, false);
      const header = lines.shift();
      if (!header || header.format !== FORMAT || header.version !== VERSION) {
        throw new Error(`${this.snapshotPath} is not a version ${VERSION} snapshot of this launcher`);
      }
      this.generation = header.journal;
      this.snapshotBytes = bytes;
      this.loaded.push(lines);
    }
    // Journals older than the snapshot are in it already (a stop between the two steps).
    for (const name of fs.readdirSync(this.dir)) {
      const match = /^journal-(\d+)\.jsonl$/.exec(name);
      if (match && Number(match[1]) < this.generation) fs.rmSync(path.join(this.dir, name), { force: true });
    }
    const journal = this.journalPath(this.generation);
    this.journalFound = fs.existsSync(journal);
    if (this.journalFound) this.loaded.push(readLines(journal, true).lines);
  }

  // Replays what open() read into the store, folds a journal into a new snapshot, and
  // journals from then on.
  restore(account) {
    this.account = account;
    const containers = new Map();
    for (const lines of this.loaded) {
      for (const line of lines) for (const entry of line) applyEntry(account, entry, containers);
    }
    this.loaded = null;
    if (this.journalFound || !fs.existsSync(this.snapshotPath)) this.compact();
    setJournal(this);
    return count(account);
  }

  // --- the journal, as store.js uses it ---
  record(entry) {
    this.pending.push(entry);
  }

  mark() {
    return this.pending.length;
  }

  truncate(mark) {
    this.pending.length = mark;
  }

  // Appends the pending writes as one line; called before each response is sent.
  flush() {
    if (this.pending.length === 0) return;
    const line = `${JSON.stringify(this.pending)}\n`;
    this.pending = [];
    if (this.fd === null) this.fd = fs.openSync(this.journalPath(this.generation), "a");
    this.journalBytes += writeAll(this.fd, line);
    if (this.journalBytes > Math.max(MIN_COMPACT_BYTES, 2 * this.snapshotBytes)) this.compact();
  }

  // Writes the whole store as a new snapshot (atomically: temp file, fsync, rename) that
  // names a fresh journal; the old journal is then redundant.
  compact() {
    const next = this.generation + 1;
    const temp = `${this.snapshotPath}.tmp`;
    const fd = fs.openSync(temp, "w");
    let bytes = 0;
    try {
      bytes += writeAll(fd, `${JSON.stringify({ format: FORMAT, version: VERSION, journal: next })}\n`);
      let chunk = [];
      for (const entry of snapshotEntries(this.account)) {
        chunk.push(entry);
        if (chunk.length === ENTRIES_PER_SNAPSHOT_LINE) {
          bytes += writeAll(fd, `${JSON.stringify(chunk)}\n`);
          chunk = [];
        }
      }
      if (chunk.length) bytes += writeAll(fd, `${JSON.stringify(chunk)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, this.snapshotPath);
    const dirFd = fs.openSync(this.dir, "r");
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
    fs.rmSync(this.journalPath(this.generation), { force: true });
    this.generation = next;
    this.snapshotBytes = bytes;
    this.journalBytes = 0;
  }

  // Graceful stop: everything into the snapshot, lock released.
  close() {
    if (this.account) {
      this.flush();
      this.compact();
    }
    this.unlock();
  }

  lock() {
    const file = path.join(this.dir, "lock");
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        const fd = fs.openSync(file, "wx");
        fs.writeSync(fd, `${process.pid}\n`);
        fs.closeSync(fd);
        this.locked = true;
        return;
      } catch (err) {
        if (err.code !== "EEXIST") throw err;
        const pid = Number.parseInt(fs.readFileSync(file, "utf8"), 10);
        if (pid && pid !== process.pid && alive(pid)) {
          throw new Error(`${this.dir} is in use by another launcher (pid ${pid})`);
        }
        fs.rmSync(file, { force: true }); // left behind by a launcher that was killed
      }
    }
    throw new Error(`could not lock ${this.dir}`);
  }

  unlock() {
    if (!this.locked) return;
    this.locked = false;
    fs.rmSync(path.join(this.dir, "lock"), { force: true });
  }
}

module.exports = { DataDir };
