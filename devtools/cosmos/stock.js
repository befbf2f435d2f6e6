"use strict";
// The stock @vercel/cosmosdb-server and the query engine it uses, resolved from the
// server's own directory so every patch lands on the copies it actually loads.
const path = require("path");

const LIB = path.dirname(require.resolve("@vercel/cosmosdb-server"));
const QUERY_LIB = path.dirname(require.resolve("@zeit/cosmosdb-query", { paths: [LIB] }));

const lib = (name) => require(path.join(LIB, name));
const queryLib = (name) => require(path.join(QUERY_LIB, name));
// A dependency of the stock server (raw-body, @babel/generator, ...), as it resolves it.
const dependency = (name, from = LIB) => require(require.resolve(name, { paths: [from] }));

module.exports = { LIB, QUERY_LIB, lib, queryLib, dependency };
