#!/usr/bin/env node
// Re-adds the other platforms' optional packages to package-lock.json.
//
// Why: the registry this project builds from serves only some platforms' builds of
// packages such as @biomejs/cli-* or @napi-rs/*-<platform>. npm then writes a lock
// without the missing ones, and `npm ci` refuses that lock as "out of sync". Each entry
// added here is optional and names its os/cpu (read off the package name), so npm skips
// it on every other platform without fetching anything. Run after changing dependencies:
//   npm install && node scripts/lock-platforms.js
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const file = path.resolve(__dirname, '..', 'package-lock.json');
const lock = JSON.parse(fs.readFileSync(file, 'utf8'));
const pkgs = lock.packages;
const OS = ['android', 'darwin', 'freebsd', 'linux', 'win32', 'openbsd', 'sunos', 'aix'];
const CPU = { arm64: 'arm64', x64: 'x64', ia32: 'ia32', arm: 'arm', ppc64: 'ppc64', s390x: 's390x', riscv64: 'riscv64', wasm32: 'wasm32' };

function platformOf(name) {
  const parts = name.split('/').pop().split('-');
  const out = {};
  const os = parts.find((p) => OS.includes(p));
  if (os) out.os = [os];
  const cpu = parts.find((p) => p in CPU);
  if (cpu) out.cpu = [CPU[cpu]];
  if (parts.includes('musl')) out.libc = ['musl'];
  if (parts.includes('wasi')) out.cpu = ['wasm32'];
  return out;
}

let added = 0;
for (const [where, meta] of Object.entries(pkgs)) {
  for (const [dep, range] of Object.entries(meta.optionalDependencies ?? {})) {
    const base = where === '' ? 'node_modules' : `${where}/node_modules`;
    const candidates = [`${base}/${dep}`, `node_modules/${dep}`];
    if (candidates.some((c) => pkgs[c])) continue;
    const version = String(range).replace(/^[\^~=]/, '');
    pkgs[`node_modules/${dep}`] = { version, optional: true, ...platformOf(dep) };
    added++;
  }
}
// Keep a stable order, as npm writes it.
lock.packages = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)));
fs.writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lock-platforms: ${added} optional platform package(s) added`);
