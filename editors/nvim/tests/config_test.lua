-- The plugin's options without a server: defaults, merging, the server command, clear errors for wrong
-- types, keymaps that can be turned off, and Tab left alone until a suggestion exists.
local here = debug.getinfo(1, 'S').source:sub(2):match('(.*/)')
local H = dofile(here .. 'harness.lua')
local config = require('qcoder.config')

H.run(function()
  local o = config.resolve({ model = '/m', args = { '--threads', '2' }, keymaps = { accept_word = false } })
  H.check(o.keymaps.accept == '<Tab>' and o.keymaps.accept_word == false, 'keymaps merged: ' .. vim.inspect(o.keymaps))
  H.check(vim.deep_equal(config.command(o), { 'qcoder', 'lsp', '--model', '/m', '--threads', '2' }),
    'command: ' .. vim.inspect(config.command(o)))
  H.check(vim.deep_equal(config.command(config.resolve({ cmd = { '/x/qcoder', 'lsp' } })), { '/x/qcoder', 'lsp' }), 'cmd wins')

  local ok, err = pcall(config.resolve, { model = 42 })
  H.check(not ok and tostring(err):find('model') ~= nil, 'a wrong type is named: ' .. tostring(err))
  ok, err = pcall(config.resolve, { keymaps = { acept = '<Tab>' } })
  H.check(not ok and tostring(err):find('acept') ~= nil, 'an unknown keymap is named: ' .. tostring(err))

  -- A Tab mapping the user had keeps working when nothing is suggested; accept-word is off as asked.
  vim.keymap.set('i', '<Tab>', '<C-t>', { noremap = true })
  require('qcoder').setup({ cmd = { '/nonexistent/qcoder', 'lsp' }, keymaps = { accept_word = false } })
  H.check(vim.fn.maparg('<M-Right>', 'i') == '', 'accept_word mapped although turned off')
  vim.cmd('enew')
  vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'x' })
  H.type('A<Tab><Esc>')
  H.check(vim.api.nvim_get_current_line():match('^%s+x$') ~= nil, '<Tab> did not fall back to <C-t>: ' .. vim.inspect(vim.api.nvim_get_current_line()))

  -- No server binary: a file opens fine and the user is told once.
  local path = os.getenv('QCODER_WORKDIR') .. '/a.py'
  vim.fn.writefile({ 'x = 1' }, path)
  vim.cmd('edit ' .. path)
  H.check(H.seen('cannot run /nonexistent/qcoder'), 'missing binary not reported: ' .. vim.inspect(H.messages))
  H.check(require('qcoder.server').client(0) == nil, 'a client without a server')
end)
