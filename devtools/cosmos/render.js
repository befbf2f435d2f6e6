"use strict";
// Response bodies as JSON bytes, reusing the JSON text of stored documents.
//
// A stored document is never changed in place: every write stores a new object (the
// batch undo log relies on that too). So the JSON text of a stored document, or of an
// object or array inside it, once computed stays right for as long as that object lives,
// and a query answer that projects `c.counters` out of 240 documents is a join of 240
// cached strings instead of 240 fresh serialisations (V8's JSON.stringify is slow on
// objects with keys of their own, such as counters keyed by id).
//
// Stored values also hardly ever hold undefined (they come from JSON; only a patch
// operation without a value leaves one). The registry holds only values with no undefined
// anywhere inside, which lets the query engine's cleanup pass them through untouched
// (query.js).

// A stored document and each object or array among its members -> its JSON text, or null
// until first rendered.
const stored = new WeakMap();

// Registered: a document and its members, the values queries return (SELECT *, VALUE c,
// c.field). Deeper values are left out, as every registration costs memory (tens of
// bytes); a query that returns one renders it as it renders any other value.
const DEEPEST = 1;

// Registers a document as it is stored (the store calls this on every write); false when
// `value` holds undefined somewhere, and then it and its containers stay unregistered.
function keepStored(value, depth = 0) {
  if (value === undefined) return false;
  if (value === null || typeof value !== "object" || stored.has(value)) return true;
  let clean = true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) if (!keepStored(value[i], depth + 1)) clean = false;
  } else {
    // Not Object.keys: listing a stored object's keys costs V8 memory for as long as the
    // object lives (~200 bytes for a document).
    for (const member of Object.values(value)) if (!keepStored(member, depth + 1)) clean = false;
  }
  if (clean && depth <= DEEPEST) stored.set(value, null);
  return clean;
}

function isStored(value) {
  return stored.has(value);
}

// The text is encoded in runs of about this many characters: one long string would be
// flattened into a fresh large allocation before being encoded into another.
const RUN = 32 * 1024;

// The JSON text of a response, run by run, then encoded into one Buffer.
class Runs {
  constructor() {
    this.runs = [];
    this.text = ""; // the current run
  }

  add(text) {
    if (text.length >= RUN) {
      // A long piece (a large stored document's cached text) is a run of its own, as is.
      this.endRun();
      this.runs.push(text);
      return;
    }
    this.text += text;
    if (this.text.length >= RUN) this.endRun();
  }

  endRun() {
    if (!this.text) return;
    this.runs.push(this.text);
    this.text = "";
  }

  bytes() {
    this.endRun();
    let length = 0;
    for (const run of this.runs) length += Buffer.byteLength(run);
    const out = Buffer.allocUnsafe(length);
    let offset = 0;
    for (const run of this.runs) offset += out.utf8Write(run, offset);
    return out;
  }
}

// `"key":`, for the few member names the answers' rows repeat.
const members = new Map();
const MAX_MEMBERS = 1000;

function member(key) {
  let text = members.get(key);
  if (text === undefined) {
    text = `${JSON.stringify(key)}:`;
    if (members.size < MAX_MEMBERS) members.set(key, text);
  }
  return text;
}

const PARTS = Symbol("written member by member");

// The JSON text of `value` when it is written in one piece (a primitive, a stored value,
// anything that is not a plain object or array or that has a toJSON: JSON.stringify's);
// undefined when it has none (undefined, a function, a symbol); PARTS for a plain object
// or array, written member by member.
function piece(value) {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  let text = stored.get(value);
  if (text !== undefined) {
    if (text === null) stored.set(value, (text = JSON.stringify(value)));
    return text;
  }
  if (typeof value.toJSON === "function") return JSON.stringify(value);
  if (!Array.isArray(value)) {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return JSON.stringify(value);
  }
  return PARTS;
}

function write(value, text, out) {
  if (text !== PARTS) {
    out.add(text);
    return;
  }
  if (Array.isArray(value)) {
    out.add("[");
    for (let i = 0; i < value.length; i += 1) {
      const item = value[i];
      const itemText = piece(item);
      if (i) out.add(",");
      write(item, itemText === undefined ? "null" : itemText, out);
    }
    out.add("]");
    return;
  }
  out.add("{");
  let first = true;
  for (const key of Object.keys(value)) {
    const item = value[key];
    const itemText = piece(item);
    if (itemText === undefined) continue; // left out, as by JSON.stringify
    out.add(first ? member(key) : `,${member(key)}`);
    first = false;
    write(item, itemText, out);
  }
  out.add("}");
}

// Buffer.from(JSON.stringify(value)): the same bytes, with the stored values in it taken
// from (or put in) the cache; undefined when `value` has no JSON.
function jsonBytes(value) {
  const text = piece(value);
  if (text === undefined) return undefined;
  const out = new Runs();
  write(value, text, out);
  return out.bytes();
}

module.exports = { keepStored, isStored, jsonBytes };
