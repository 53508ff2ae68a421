#!/usr/bin/env node
// Lint rule the linter lacks: a source file past MAX_LINES usually holds two responsibilities.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const MAX_LINES = 600;
const roots = ['src', 'test', 'bench', 'scripts', 'native/src'];
const skip = /(^|\/)(generated|node_modules)(\/|$)|\.d\.ts$/;
const exts = new Set(['.ts', '.js', '.rs']);
const bad = [];
function walk(dir) {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (skip.test(p)) continue;
    if (e.isDirectory()) walk(p);
    else if (exts.has(path.extname(p))) {
      const n = fs.readFileSync(p, 'utf8').split('\n').length;
      if (n > MAX_LINES) bad.push(`${p}: ${n} lines (max ${MAX_LINES})`);
    }
  }
}
for (const r of roots) walk(path.resolve(__dirname, '..', r));
if (bad.length) {
  console.error(`files over ${MAX_LINES} lines:\n  ${bad.join('\n  ')}`);
  process.exit(1);
}
