-- :checkhealth qcoder — is the server there, does it run, is a model found, is a server attached.
local M = {}

local health = vim.health or require('health')
local start = health.start or health.report_start
local ok = health.ok or health.report_ok
local warn = health.warn or health.report_warn
local error = health.error or health.report_error
local info = health.info or health.report_info

function M.check()
  start('qcoder')
  if vim.fn.has('nvim-0.7') == 1 then ok('Neovim ' .. tostring(vim.version().major) .. '.' .. tostring(vim.version().minor))
  else error('Neovim 0.7 or newer is needed') end

  local qcoder = require('qcoder')
  local opts = qcoder.options()
  if not opts then
    warn('setup() has not been called: add require("qcoder").setup({}) to your config')
    opts = require('qcoder.config').resolve({})
  end
  local cmd = require('qcoder.config').command(opts)
  if vim.fn.executable(cmd[1]) ~= 1 then
    error('cannot run ' .. cmd[1] .. ': put qcoder on PATH or set cmd in setup()')
    return
  end
  local version = vim.fn.system({ cmd[1], 'version' })
  if vim.v.shell_error ~= 0 then
    error(cmd[1] .. ' version failed: ' .. version)
    return
  end
  ok((version:gsub('\n.*', '')))

  local info_cmd = { cmd[1], 'info' }
  if opts.model then vim.list_extend(info_cmd, { '--model', opts.model }) end
  local found = vim.fn.system(info_cmd)
  if vim.v.shell_error ~= 0 then
    error('no model: ' .. found:gsub('%s+$', ''))
  else
    ok('model: ' .. (found:match('model:%s*([^\n]+)') or found:match('[^\n]+') or ''))
  end

  local running = require('qcoder.server').all()
  if #running == 0 then
    info('no server running (one starts when a file is opened)')
  else
    ok(#running .. ' server(s) running; status: ' .. require('qcoder.status').line())
  end
end

return M
