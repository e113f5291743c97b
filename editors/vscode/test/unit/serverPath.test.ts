// Finding the qcoder executable: the setting, PATH, then the repository's build tree.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { findServer } from '../../src/serverPath';

describe('findServer', () => {
  let root: string;
  const executable = (file: string) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '#!/bin/sh\n', { mode: 0o755 });
    return file;
  };
  beforeEach(() => { root = fs.mkdtempSync(path.join(os.tmpdir(), 'qcoder-path-')); });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('takes the setting first, expanding ~/', () => {
    expect(findServer({ setting: '/opt/q/qcoder', pathEnv: '', extensionPath: root })).toBe('/opt/q/qcoder');
    expect(findServer({ setting: '~/bin/qcoder', extensionPath: root })).toBe(path.join(os.homedir(), 'bin/qcoder'));
  });

  it('then an executable qcoder on PATH, then the build tree of the repository', () => {
    const extension = path.join(root, 'repo', 'editors', 'vscode');
    const built = executable(path.join(root, 'repo', 'build', 'release', 'qcoder'));
    fs.mkdirSync(path.join(root, 'bin'));
    fs.writeFileSync(path.join(root, 'bin', 'qcoder'), 'not executable', { mode: 0o644 });
    const pathEnv = [path.join(root, 'empty'), path.join(root, 'bin')].join(path.delimiter);
    expect(findServer({ setting: '', pathEnv, extensionPath: extension })).toBe(built);
    const onPath = executable(path.join(root, 'bin2', 'qcoder'));
    expect(findServer({ setting: ' ', pathEnv: `${pathEnv}${path.delimiter}${path.dirname(onPath)}`, extensionPath: extension })).toBe(onPath);
  });

  it('says when there is none', () => {
    expect(findServer({ pathEnv: root, extensionPath: path.join(root, 'a', 'b') })).toBeUndefined();
  });
});
