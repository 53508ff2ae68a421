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
  // uint64 fields must decode as JS numbers (seqs, times: all below 2^53). protobufjs
  // picks up the `long` package when it is installed and then decodes to Long objects,
  // defaults included; turn that off before the module builds its prototypes.
  const marker = 'var $Reader = $protobuf.Reader';
  const text = fs.readFileSync(js, 'utf8');
  if (!text.includes(marker)) throw new Error('build-proto: unexpected pbjs output; cannot disable Long');
  fs.writeFileSync(js, text.replace(marker, `$protobuf.util.Long = undefined;\n$protobuf.configure();\n${marker}`));
}
fs.mkdirSync(distDir, { recursive: true });
fs.copyFileSync(js, path.join(distDir, 'moor.js'));
