#!/usr/bin/env node
// Builds the native addon when the package is installed (npm runs this as the "install" script): checks that
// OpenBLAS is there first, so a missing library is one clear sentence instead of a compiler error, then runs the
// node-gyp that npm ships (npm_config_node_gyp), or the one in node_modules, against this machine's Node headers.
// The MPI addon (build/Release/ctfgen_mpi.node, for `mpirun -np N ctfgen …`) is built too where Open MPI's
// development files are (binding.gyp's condition); without them the package installs and runs as one process.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const pc = spawnSync('pkg-config', ['--exists', 'openblas']);
if (pc.error || pc.status !== 0) {
  console.error('ctfgen: OpenBLAS was not found (pkg-config openblas). Install it first, e.g. on Debian/Ubuntu:\n' +
    '  apt-get install -y libopenblas-dev pkg-config\nthen install ctfgen again.');
  process.exit(1);
}
const mpi = spawnSync('pkg-config', ['--exists', 'ompi-c']);
if (mpi.error || mpi.status !== 0)
  console.error(
    'ctfgen: Open MPI was not found (pkg-config ompi-c): building without MPI support (one process only;\n' +
      '  for `mpirun -np N ctfgen …` install libopenmpi-dev openmpi-bin, then install ctfgen again)',
  );
let gyp = process.env['npm_config_node_gyp'];
if (!gyp || !existsSync(gyp)) {
  try {
    gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    console.error('ctfgen: node-gyp was not found; run the install through npm, or `npm install node-gyp`');
    process.exit(1);
  }
}
// The Node headers of the running Node (<prefix>/include/node) when they are there: nothing is downloaded.
const prefix = dirname(dirname(process.execPath));
const nodedir = existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
const r = spawnSync(process.execPath, [gyp, 'rebuild', ...nodedir], { stdio: 'inherit' });
process.exit(r.status ?? 1);
