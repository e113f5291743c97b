// The .vsix the build made (QCODER_VSIX): the compiled extension, its manifest and its one runtime
// dependency tree, and none of the sources, tests or dev tools.
import { describe, expect, it } from 'vitest';
import yauzl from 'yauzl';

function entries(file: string): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    const out = new Map<string, Buffer>();
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return reject(e);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => { out.set(entry.fileName, Buffer.concat(chunks)); zip.readEntry(); });
        });
      });
      zip.on('end', () => resolve(out));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

describe('the packaged extension', () => {
  it('holds the compiled extension and vscode-languageclient, and nothing for development', async () => {
    const files = await entries(process.env.QCODER_VSIX!);
    const manifest = JSON.parse(files.get('extension/package.json')!.toString());
    expect(manifest.main).toBe('./out/extension.js');
    expect(manifest.engines.vscode).toBe('^1.91.0');
    for (const name of ['extension', 'client', 'inline', 'status', 'commands', 'config', 'serverPath', 'request']) {
      expect(files.has(`extension/out/${name}.js`), name).toBe(true);
    }
    expect(files.get('extension/out/extension.js')!.toString()).toContain('exports.activate = activate');
    const client = JSON.parse(files.get('extension/node_modules/vscode-languageclient/package.json')!.toString());
    expect(client.version).toBe('11.0.0');
    const names = [...files.keys()];
    expect(names.filter((n) => /^extension\/(src|test)\//.test(n) || n.endsWith('.ts') && !n.endsWith('.d.ts'))).toEqual([]);
    expect(names.some((n) => /node_modules\/(typescript|vitest|@vscode\/vsce)\//.test(n))).toBe(false);
  });
});
