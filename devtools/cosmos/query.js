"use strict";
// The query engine (@zeit/cosmosdb-query) made linear, and a query handler that reads only
// the logical partition a query is scoped to.
//
// The engine compiles SQL to JavaScript whose FROM step is
//   docs.reduce(($, c) => [...$, { c }], [])
// which copies the accumulator for every document: every query cost O(container²)
// (a one-document query over 20,000 documents took seconds). It also re-evaluated the
// compiled code (new Function) on every run, and its result cleanup copied arrays the
// same quadratic way. Patched here: the reduce pushes, the compiled function is kept with
// the parsed query, the cleanup is linear.
const { lib, queryLib, dependency, QUERY_LIB } = require("./stock");
const { keyPaths, partitionId, headerValues } = require("./partition");
const { documentsIn, documentsWhere, byRid, allDocuments } = require("./store");
const { isStored } = require("./render");

const parse = queryLib("index").default;
const transform = queryLib("transformer").default;
const aggregateFunctions = queryLib("aggregate-functions");
const builtinFunctions = queryLib("builtin-functions");
const helpers = queryLib("helpers");
const generate = dependency("@babel/generator", QUERY_LIB).default;

const readItems = lib("handler/_read-items").default;
const json = lib("json").default;
const trueHeader = lib("true-header").default;

// --- The engine -----------------------------------------------------------------------

const identifier = (name) => ({ type: "Identifier", name });

// `[...$, a, ...b]` (the accumulator of a reduce, always a fresh array) -> `($.push(a, ...b), $)`
function pushInstead(expression) {
  if (!expression || expression.type !== "ArrayExpression") return expression;
  const [first, ...rest] = expression.elements;
  if (!first || first.type !== "SpreadElement" || first.argument.type !== "Identifier") return expression;
  if (first.argument.name !== "$") return expression;
  return {
    type: "SequenceExpression",
    expressions: [
      {
        type: "CallExpression",
        callee: { type: "MemberExpression", object: identifier("$"), property: identifier("push"), computed: false },
        arguments: rest,
      },
      identifier("$"),
    ],
  };
}

function linearize(node) {
  if (!node || typeof node !== "object") return;
  if (Array.isArray(node)) {
    node.forEach(linearize);
    return;
  }
  if (node.type === "ArrowFunctionExpression" && node.params[0] && node.params[0].name === "$") {
    node.body = pushInstead(node.body);
    if (node.body.type === "ConditionalExpression") node.body.consequent = pushInstead(node.body.consequent);
  }
  for (const key of Object.keys(node)) if (key !== "type") linearize(node[key]);
}

const QueryPrototype = Object.getPrototypeOf(parse("SELECT * FROM c"));

Object.defineProperty(QueryPrototype, "code", {
  configurable: true,
  get() {
    if (!this._code) {
      const program = transform(this.ast);
      linearize(program);
      this._code = generate(program).code;
    }
    return this._code;
  },
});

QueryPrototype.exec = function exec(collection, options = {}) {
  const { parameters, udf, maxItemCount, continuation, compositeIndexes } = options;
  if (!this._run) this._run = new Function(`"use strict";return (${this.code})`)(); // eslint-disable-line no-new-func
  const params = {};
  for (const { name, value } of parameters || []) params[name.slice(1)] = value;
  return this._run(
    aggregateFunctions,
    builtinFunctions,
    collection,
    helpers,
    udf || {},
    params,
    maxItemCount,
    continuation,
    compositeIndexes,
  );
};

// Same result as the stock helper (undefined dropped from arrays and objects), linear, and
// copying only what it changes: the stock one deep-copied every row of every answer (most
// of a query's cost when it returns hundreds of documents), although an answer is only
// serialised, and a row without undefined in it can go out as it is. The parts of stored
// documents that render.js registers hold no undefined and are not even looked into.
function stripUndefined(value) {
  if (value === null || typeof value !== "object" || isStored(value)) return value;
  return Array.isArray(value) ? stripArray(value) : stripObject(value);
}

function stripArray(value) {
  let out = null; // the copy, started at the first element that changes
  for (let i = 0; i < value.length; i += 1) {
    const v = value[i];
    const kept = v === undefined ? v : stripUndefined(v);
    if (out === null && (v === undefined || kept !== v)) out = value.slice(0, i);
    if (out !== null && kept !== undefined) out.push(kept);
  }
  return out === null ? value : out;
}

function stripObject(value) {
  const keys = Object.keys(value);
  let out = null;
  for (let i = 0; i < keys.length; i += 1) {
    const v = value[keys[i]];
    const kept = v === undefined ? v : stripUndefined(v);
    if (out === null && (v === undefined || kept !== v)) {
      out = {};
      for (let j = 0; j < i; j += 1) out[keys[j]] = value[keys[j]];
    }
    if (out !== null && kept !== undefined) out[keys[i]] = kept;
  }
  return out === null ? value : out;
}

helpers.stripUndefined = stripUndefined;

// Without ORDER BY the engine sorts its rows by _rid, comparing through a generic
// comparator (about a third of a large answer's query time). Rows already in that order,
// as the equality index hands them over (store.js), keep it: a stable sort would not move
// them.
const stockSort = helpers.sort;
helpers.sort = function sort(collection, getRid, compositeIndexes, ...orders) {
  if (!orders.length && inRidOrder(collection, getRid)) return collection.slice();
  return stockSort(collection, getRid, compositeIndexes, ...orders);
};

function inRidOrder(rows, getRid) {
  let previous = "";
  for (let i = 0; i < rows.length; i += 1) {
    const rid = getRid(rows[i]);
    if (typeof rid !== "string" || rid < previous) return false;
    previous = rid;
  }
  return true;
}

// --- Which logical partition a query reads --------------------------------------------

// The AND-ed terms of a condition (a OR b is one term).
function conjuncts(condition, out = []) {
  if (condition && condition.type === "scalar_binary_expression" && condition.operator === "AND") {
    conjuncts(condition.left, out);
    conjuncts(condition.right, out);
  } else if (condition) {
    out.push(condition);
  }
  return out;
}

// `c.a.b` / `c["a"]` -> ["a", "b"] when rooted at the FROM alias, else null.
function memberPath(node, alias) {
  const segments = [];
  let current = node;
  while (current && current.type === "scalar_member_expression") {
    const { property } = current;
    if (current.computed) {
      if (property.type !== "string_constant") return null;
      segments.unshift(property.value);
    } else {
      segments.unshift(property.name);
    }
    current = current.object;
  }
  return current && current.type === "identifier" && current.name === alias && segments.length ? segments : null;
}

// A literal or a bound parameter: { value } or null.
function constant(node, parameters) {
  switch (node && node.type) {
    case "string_constant":
    case "number_constant":
    case "boolean_constant":
      return { value: node.value };
    case "null_constant":
      return { value: null };
    case "parameter_name": {
      // The last binding of a repeated name, as the engine binds them.
      const bound = (parameters || []).findLast((p) => p.name === node.name);
      return bound && bound.value !== undefined ? { value: bound.value } : null;
    }
    default:
      return null;
  }
}

// The plain `FROM c` alias of a query with a WHERE, or null.
function whereAlias(ast) {
  const body = ast && ast.body;
  if (!body || !body.from || !body.where) return null;
  const { source } = body.from;
  if (source.iteration || source.expression.type !== "collection_expression") return null;
  if (source.expression.expression.type !== "identifier") return null;
  return (source.alias || source.expression.expression).name;
}

const isScalar = (value) => value === null || typeof value !== "object";

// The `c.<path> = <literal or @param>` terms at the top level of a query's WHERE, as a
// Map of path ("a/b") -> { path: segments, value }; empty when the query is not a plain
// `FROM c` with a WHERE.
function pinnedTerms(ast, parameters) {
  const pinned = new Map();
  const alias = whereAlias(ast);
  if (alias === null) return pinned;
  for (const term of conjuncts(ast.body.where.condition)) {
    if (term.type !== "scalar_binary_expression" || term.operator !== "=") continue;
    for (const [member, other] of [
      [term.left, term.right],
      [term.right, term.left],
    ]) {
      const segments = memberPath(member, alias);
      const value = segments && constant(other, parameters);
      if (value && isScalar(value.value)) {
        pinned.set(segments.join("/"), { path: segments, value: value.value });
      }
    }
  }
  return pinned;
}

// The top-level terms that hold a path to a few scalar values: `c.p = v`,
// `c.p IN (v1, v2)` and `ARRAY_CONTAINS(<array literal or @param>, c.p)`, as
// [{ path: segments, values }]. Each compares with ===, as the index's keys do.
function indexableTerms(ast, parameters) {
  const terms = [];
  for (const { path, value } of pinnedTerms(ast, parameters).values()) terms.push({ path, values: [value] });
  const alias = whereAlias(ast);
  if (alias === null) return terms;
  for (const term of conjuncts(ast.body.where.condition)) {
    let path = null;
    let values = null;
    if (term.type === "scalar_in_expression") {
      path = memberPath(term.value, alias);
      const constants = term.list.map((node) => constant(node, parameters));
      if (constants.every(Boolean)) values = constants.map((c) => c.value);
    } else if (
      term.type === "scalar_function_expression" &&
      !term.udf && // udf.ARRAY_CONTAINS is the account's own function, not the built-in
      term.name.name.toUpperCase() === "ARRAY_CONTAINS" &&
      term.arguments.length >= 2
    ) {
      path = memberPath(term.arguments[1], alias);
      const array = arrayConstant(term.arguments[0], parameters);
      if (array) values = array;
    }
    if (path && values && values.every(isScalar)) terms.push({ path, values: [...new Set(values)] });
  }
  return terms;
}

// An array literal of constants or a parameter bound to an array, or null.
function arrayConstant(node, parameters) {
  if (node.type === "array_constant") {
    const constants = node.elements.map((element) => constant(element, parameters));
    return constants.every(Boolean) ? constants.map((c) => c.value) : null;
  }
  const bound = constant(node, parameters);
  return bound && Array.isArray(bound.value) ? bound.value : null;
}

// The partition a query's WHERE pins (every key path), or null.
function partitionFromWhere(ast, paths, parameters) {
  if (!paths.length) return null;
  const pinned = pinnedTerms(ast, parameters);
  const values = [];
  for (const path of paths) {
    const term = pinned.get(path.join("/"));
    if (!term) return null;
    values.push(term.value);
  }
  return partitionId(values);
}

// What a cross-partition query reads: the documents matching its most selective
// indexable term (equality index lookups, one per value), or every document when it has
// none.
function candidates(documents, ast, parameters) {
  let best = null;
  for (const { path, values } of indexableTerms(ast, parameters)) {
    const docs = documentsWhereAny(documents, path, values);
    if (docs && (best === null || docs.length < best.length)) best = docs;
  }
  return best || allDocuments(documents);
}

// The documents whose value at `path` is one of `values`, in _rid order, or null without
// an index on the path.
function documentsWhereAny(documents, path, values) {
  if (values.length === 1) return documentsWhere(documents, path, values[0]);
  const found = [];
  for (const value of values) {
    const docs = documentsWhere(documents, path, value);
    if (!docs) return null;
    found.push(...docs);
  }
  return found.sort(byRid);
}

// The stock server writes fixed query metrics (all zeros) after the handler returns;
// the real counts replace them, so clients (and tests) can see how much a query read.
function reportMetrics(req, res, retrieved, output) {
  if (!req.headers["x-ms-documentdb-populatequerymetrics"]) return;
  const setHeader = res.setHeader;
  res.setHeader = function setHeaderWithMetrics(name, value) {
    if (String(name).toLowerCase() === "x-ms-documentdb-query-metrics") {
      value = String(value)
        .replace(/retrievedDocumentCount=\d+/, `retrievedDocumentCount=${retrieved}`)
        .replace(/outputDocumentCount=\d+/, `outputDocumentCount=${output}`);
    }
    return setHeader.call(this, name, value);
  };
}

// POST .../docs with a query. The partition key header scopes the query, as in Cosmos DB
// (the stock handler ignored it); without it, a WHERE that pins the key does the same.
async function queryDocuments(account, req, res, { dbId, collId }) {
  return readItems(req, res, "Documents", async ({ continuation, maxItemCount }) => {
    const body = await json(req);
    if (!body.query) {
      res.statusCode = 400;
      return { code: "BadRequest", message: "missing query" };
    }
    const collection = account.database(dbId).collection(collId);
    const meta = collection.read();
    if (!meta) return null;
    const { documents } = collection;
    const query = documents._getQuery(body.query);
    const paths = keyPaths(meta);
    const header = headerValues(req);
    if (header && header.error) {
      res.statusCode = 400;
      return { code: "BadRequest", message: header.error };
    }
    let pid = null;
    if (header && paths.length && header.values.length === paths.length) pid = partitionId(header.values);
    else pid = partitionFromWhere(query.ast, paths, body.parameters);
    if (
      pid === null &&
      paths.length &&
      !trueHeader(req, "x-ms-documentdb-query-enablecrosspartition") &&
      !query.containsPartitionKeys(meta.partitionKey.paths)
    ) {
      res.statusCode = 400;
      return { code: "BadRequest", message: "missing partition keys" };
    }
    const docs = pid === null ? candidates(documents, query.ast, body.parameters) : documentsIn(documents, pid);
    const compositeIndexes = (meta.indexingPolicy && meta.indexingPolicy.compositeIndexes) || [];
    let result;
    try {
      result = query.exec(docs, {
        parameters: body.parameters,
        udf: documents._userDefinedFunctions(),
        maxItemCount,
        continuation,
        compositeIndexes,
      });
    } catch (err) {
      res.statusCode = 400;
      return { code: "BadRequest", message: err.message };
    }
    reportMetrics(req, res, docs.length, result.result.length);
    return result;
  });
}

// --- Patch filter predicates ----------------------------------------------------------

const predicates = new Map(); // condition shape -> parsed query, oldest first
const MAX_PREDICATES = 1000;

// String literals are kept; number literals become parameters, so predicates that differ
// only in their numbers ("c.version < 7", "c.version < 8") share one parsed query.
const LITERALS = /'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b/g;

function predicateShape(condition) {
  const numbers = [];
  const shape = condition.trim().replace(LITERALS, (literal) => {
    if (literal[0] === "'" || literal[0] === '"') return literal;
    numbers.push({ name: `@__n${numbers.length}`, value: Number(literal) });
    return numbers[numbers.length - 1].name;
  });
  return { shape, numbers };
}

// Whether `doc` satisfies a patch filter predicate ("FROM c WHERE ..."), evaluated against
// that one document (the stock server ran a container query per patch). Throws on a
// predicate that does not parse.
function satisfies(condition, doc) {
  const { shape, numbers } = predicateShape(condition);
  let query = predicates.get(shape);
  if (!query) {
    let text = shape;
    if (!/^select\b/i.test(text)) text = /^from\b/i.test(text) ? `SELECT VALUE 1 ${text}` : `SELECT VALUE 1 FROM c ${text}`;
    query = parse(text);
    if (predicates.size >= MAX_PREDICATES) predicates.delete(predicates.keys().next().value);
    predicates.set(shape, query);
  }
  const parameters = [{ name: "@id", value: doc.id }, ...numbers];
  return query.exec([doc], { parameters }).result.length > 0;
}

module.exports = { queryDocuments, satisfies, partitionFromWhere };
