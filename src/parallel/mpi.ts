// A rank of an MPI world through the optional addon build/Release/ctfgen_mpi.node (native/mpi/mpi.cc), loaded
// only when the environment says an MPI launcher started this process (world.ts). MPI ends with the process:
// finalized on a clean exit, aborted (the whole job) on any other, so no rank is left waiting in a collective
// for one that is gone.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CtfError } from '../errors.js';
import { bytesOf, checkRoot, divideBySize, type Communicator, type NumericArray } from './communicator.js';
import type { LaunchedWorld } from './world.js';

interface MpiAddon {
  init(): { rank: number; size: number; version: string };
  finalize(): void;
  abort(message: string, code: number): never;
  allreduceSum(values: Float32Array): Float32Array;
  broadcast(bytes: Uint8Array, root: number): Uint8Array;
  gatherBytes(bytes: Uint8Array, root: number): Uint8Array[] | null;
  barrier(): void;
}

const ADDON = 'ctfgen_mpi.node';

function findAddon(world: LaunchedWorld): string {
  // dist/src/parallel/mpi.js -> the package root is three levels up.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'Release', ADDON);
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new CtfError(`this process is rank ${world.rank} of an MPI job (${world.launcher}), but ctfgen was built ` +
    `without MPI support: build/Release/${ADDON} not found. Install Open MPI (apt-get install -y openmpi-bin ` +
    'libopenmpi-dev) and rebuild (CTFGEN_MPI=1 npm run setup, or install ctfgen again)');
}

export class MpiCommunicator implements Communicator {
  readonly kind = 'mpi' as const;
  readonly rank: number;
  readonly size: number;
  readonly version: string;
  private readonly addon: MpiAddon;
  private agreedExit = 0;

  constructor(world: LaunchedWorld) {
    if (world.launcher === 'pmi')
      throw new CtfError(`this process was started by an MPICH-style launcher (PMI_RANK=${world.rank}), but ctfgen's ` +
        'MPI addon is built against Open MPI: start it with Open MPI\'s mpirun');
    this.addon = createRequire(import.meta.url)(findAddon(world)) as MpiAddon;
    const w = this.addon.init();
    [this.rank, this.size, this.version] = [w.rank, w.size, w.version];
    // `process.exit()` skips addon cleanup, but 'exit' listeners run on every way out of Node.
    process.on('exit', (code) => {
      if (code === 0 || code === this.agreedExit) this.addon.finalize();
      else this.addon.abort(`ctfgen: rank ${this.rank} of ${this.size} exits with code ${code}: ending the job`, code);
    });
  }

  allreduceSum(values: Float32Array): Float32Array {
    return this.addon.allreduceSum(values);
  }

  allreduceMean(values: Float32Array): Float32Array {
    return divideBySize(this.addon.allreduceSum(values), this.size);
  }

  broadcast<T extends NumericArray>(values: T, root = 0): T {
    checkRoot(root, this.size);
    this.addon.broadcast(bytesOf(values), root);
    return values;
  }

  gatherBytes(bytes: Uint8Array, root = 0): Uint8Array[] | null {
    checkRoot(root, this.size);
    return this.addon.gatherBytes(bytes, root);
  }

  barrier(): void {
    this.addon.barrier();
  }

  exitTogether(code: number): void {
    this.agreedExit = code;
  }

  abort(message: string, code = 1): never {
    return this.addon.abort(message, code);
  }
}
