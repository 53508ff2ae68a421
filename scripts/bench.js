#!/usr/bin/env node
// `npm run bench -- <name> [args]`: runs dist/bench/<name>.js (compiled from bench/<name>.ts).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const [name, ...args] = process.argv.slice(2);
const dir = path.resolve(__dirname, '..', 'dist', 'bench');
const available = fs.existsSync(dir)
  ? fs.readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).sort()
  : [];
if (!name || name === '--help' || !available.includes(name)) {
  if (name && name !== '--help') console.error(`unknown bench "${name}"`);
  console.error(`usage: npm run bench -- <name> [args]\nbenches: ${available.join(', ') || '(none built: run npm run build)'}`);
  process.exit(name && name !== '--help' ? 2 : 0);
}
const r = spawnSync(process.execPath, ['--expose-gc', path.join(dir, `${name}.js`), ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);
