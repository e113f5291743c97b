-- Neovim end to end (nvim 0.7.2, headless): start `qcoder lsp` with vim.lsp.start_client on the tiny model,
-- attach it to a Python buffer, request the "Complete function" code action, resolve it, apply the
-- resolved edit to the buffer, write the file, and stop the server (exit code 0).
--
-- Run by ctest through tests/lsp/e2e/run_nvim_test: QCODER_BINARY, QCODER_MODEL and QCODER_WORKDIR set;
-- exits with 0 when every check held, 1 with a message on stderr otherwise.
local binary = os.getenv('QCODER_BINARY')
local model = os.getenv('QCODER_MODEL')
local workdir = os.getenv('QCODER_WORKDIR')

local function fail(message)
  io.stderr:write('FAIL: ' .. message .. '\n')
  vim.cmd('cquit 1')
end

local original = table.concat({
  'import math',
  '',
  'def area(r):',
  '    pass',
  '',
  'print(area(2))',
  '',
}, '\n')
local path = workdir .. '/geo.py'
local f = assert(io.open(path, 'w'))
f:write(original)
f:close()
vim.cmd('edit ' .. vim.fn.fnameescape(path))
local buf = vim.api.nvim_get_current_buf()

local ready, exit_code = false, nil
local client_id = vim.lsp.start_client({
  name = 'qcoder',
  cmd = { binary, 'lsp', '--model', model, '--threads', '1', '--debounce', '0', '--prefix-cache', '16MiB' },
  root_dir = workdir,
  init_options = { acceptIncompleteEdits = true, editMaxTokens = 16 },
  handlers = {
    ['qcoder/status'] = function(_, status)
      if status.state == 'idle' then ready = true end
    end,
  },
  on_exit = function(code) exit_code = code end,
})
if not client_id then fail('start_client failed') end
vim.lsp.buf_attach_client(buf, client_id)
if not vim.wait(60000, function() return ready end, 10) then fail('the model did not load') end
local client = vim.lsp.get_client_by_id(client_id)

local uri = vim.uri_from_bufnr(buf)
local listed = client.request_sync('textDocument/codeAction', {
  textDocument = { uri = uri },
  range = { start = { line = 3, character = 4 }, ['end'] = { line = 3, character = 4 } },
  context = { diagnostics = {} },
}, 30000, buf)
if not listed or listed.err then fail('codeAction: ' .. vim.inspect(listed)) end
local action
for _, a in ipairs(listed.result) do
  if a.title == 'qcoder: Complete function area' then action = a end
end
if not action then fail('no "Complete function area" action in ' .. vim.inspect(listed.result)) end

local resolved = client.request_sync('codeAction/resolve', action, 60000, buf)
if not resolved or resolved.err or not resolved.result.edit then fail('resolve: ' .. vim.inspect(resolved)) end
vim.lsp.util.apply_workspace_edit(resolved.result.edit, 'utf-16')
vim.cmd('write')

-- On disk: the function changed, everything around it did not.
local written = table.concat(vim.fn.readfile(path, 'b'), '\n')
if written == original then fail('the edit changed nothing') end
if written:sub(1, 13) ~= 'import math\n\n' then fail('the lines before the function changed:\n' .. written) end
if not written:find('\nprint%(area%(2%)%)\n$') then fail('the lines after the function changed:\n' .. written) end

client.stop()
if not vim.wait(30000, function() return exit_code ~= nil end, 10) then fail('the server did not exit') end
if exit_code ~= 0 then fail('the server exited with ' .. tostring(exit_code)) end
vim.cmd('qall!')
