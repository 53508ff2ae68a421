#!/usr/bin/env node
// Generates the static protobuf code for src/protocol/moor.proto (pbjs + pbts) and
// places the runtime JS beside tsc's output. Generated files are never committed.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
const srcDir = path.join(root, 'src', 'protocol', 'generated');
const distDir = path.join(root, 'dist', 'src', 'protocol', 'generated');
const proto = path.join(root, 'src', 'protocol', 'moor.proto');
const js = path.join(srcDir, 'moor.js');

fs.mkdirSync(srcDir, { recursive: true });
const stale = !fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(proto).mtimeMs;
if (stale || process.argv.includes('--force')) {
  // --force-number: uint64 fields are JS numbers (seqs and times stay below 2^53).
  execFileSync(bin('pbjs'), ['-t', 'static-module', '-w', 'commonjs', '--force-number', '--no-verify', '--no-delimited', '-o', js, proto], { stdio: 'inherit' });
  execFileSync(bin('pbts'), ['-o', path.join(srcDir, 'moor.d.ts'), js], { stdio: 'inherit' });
}
fs.mkdirSync(distDir, { recursive: true });
fs.copyFileSync(js, path.join(distDir, 'moor.js'));
