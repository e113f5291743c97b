// A request without a token must not send `undefined` as a second parameter.
import { describe, expect, it, vi } from 'vitest';
import * as vscode from 'vscode';

import { sendRequest } from '../../src/request';

describe('sendRequest', () => {
  it('passes the token only when there is one', async () => {
    const sender = { sendRequest: vi.fn(async (..._args: unknown[]) => 'ok') };
    await sendRequest(sender as never, 'workspace/executeCommand', { command: 'qcoder.status' });
    expect(sender.sendRequest.mock.calls[0]).toEqual(['workspace/executeCommand', { command: 'qcoder.status' }]);
    const token = new vscode.CancellationTokenSource().token;
    await sendRequest(sender as never, 'm', {}, token as never);
    expect(sender.sendRequest.mock.calls[1]).toEqual(['m', {}, token]);
  });
});
