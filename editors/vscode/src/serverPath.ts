// Where the `qcoder` executable is: the `qcoder.serverPath` setting, else `qcoder` on PATH, else a build
// of the repository when the extension runs from its source folder (editors/vscode → build/<preset>/qcoder).
// Thread-safety: plain functions; they only stat files.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface ServerLookup {
  setting?: string;          // qcoder.serverPath
  pathEnv?: string;          // $PATH
  extensionPath: string;     // the extension's folder
}

const BUILD_PRESETS = ['release', 'debug', 'asan'];

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

// The executable to start, or undefined when there is none. A path from the setting is taken as it is
// (after `~/`): if it is wrong, starting it says so.
export function findServer(lookup: ServerLookup): string | undefined {
  const setting = lookup.setting?.trim();
  if (setting) return setting.startsWith('~/') ? path.join(os.homedir(), setting.slice(2)) : setting;
  for (const dir of (lookup.pathEnv ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, 'qcoder'))) return path.join(dir, 'qcoder');
  }
  const root = path.resolve(lookup.extensionPath, '..', '..');
  for (const preset of BUILD_PRESETS) {
    const candidate = path.join(root, 'build', preset, 'qcoder');
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}
