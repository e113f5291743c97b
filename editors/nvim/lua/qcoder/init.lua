-- qcoder for Neovim (0.7.2 and newer): inline completions as ghost text, code actions that edit, and the
-- server's status — from `qcoder lsp`, started per project and shared by its buffers.
--
--   require('qcoder').setup({ model = '/models/Qwen3-Coder-Next-FP8' })
--
-- Options: lua/qcoder/config.lua. Statusline: require('qcoder').statusline().
local config = require('qcoder.config')
local inline = require('qcoder.inline')
local server = require('qcoder.server')
local status = require('qcoder.status')

local M = {}

local opts = nil
local group = nil

function M.options() return opts end

-- One keymap: the action when a suggestion is shown, otherwise the key's own meaning (what it was mapped to
-- before, or the key itself), so Tab still indents when there is nothing to accept.
local function map(key, action)
  if not key then return end
  local before = vim.fn.maparg(key, 'i', false, true)
  local ours = before.desc == 'qcoder'  -- setup() called again: do not fall back to ourselves
  if ours then before = {} end
  vim.keymap.set('i', key, function()
    if inline.visible() then return '<Cmd>lua require("qcoder")._key("' .. action .. '")<CR>' end
    if before.callback then
      local result = before.callback()
      return before.expr == 1 and result or ''
    elseif before.rhs and before.rhs ~= '' then
      if before.expr == 1 then return vim.api.nvim_eval(before.rhs) end
      if before.noremap == 1 then return before.rhs end
      vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(before.rhs, true, true, true), 'm', false)
      return ''
    end
    return key
  end, { expr = true, desc = 'qcoder' })
end

function M._key(action)
  if action == 'accept' then inline.accept('all')
  elseif action == 'accept_word' then inline.accept('word')
  elseif action == 'accept_line' then inline.accept('line')
  elseif action == 'dismiss' then inline.clear()
  elseif action == 'next' then inline.cycle(1)
  elseif action == 'prev' then inline.cycle(-1)
  end
end

local function attach(bufnr)
  if server.wanted(bufnr, opts) then server.attach(bufnr, opts) end
end

function M.setup(user_opts)
  opts = config.resolve(user_opts)
  inline.hl = opts.ghost_hl
  server.set_handlers({
    ['qcoder/status'] = function(_, params) status.on_status(params or {}) end,
    ['qcoder/inlineCompletionPartial'] = function(_, params) inline.on_partial(params or {}) end,
  })

  group = vim.api.nvim_create_augroup('qcoder', { clear = true })
  vim.api.nvim_create_autocmd('FileType', { group = group, callback = function(a) attach(a.buf) end })
  vim.api.nvim_create_autocmd('TextChangedI', { group = group, callback = function() inline.on_text_changed(opts.auto_trigger) end })
  vim.api.nvim_create_autocmd('CursorMovedI', { group = group, callback = inline.on_cursor_moved })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, { group = group, callback = inline.clear })

  for _, action in ipairs({ 'accept', 'accept_word', 'accept_line', 'dismiss', 'next', 'prev' }) do
    map(opts.keymaps[action], action)
  end
  if opts.keymaps.trigger then
    vim.keymap.set('i', opts.keymaps.trigger, inline.trigger, { desc = 'qcoder: suggest' })
  end
  -- Buffers already open when setup() runs.
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) then attach(bufnr) end
  end
end

function M.statusline() return status.line() end

-- Accept / dismiss, for mappings of your own.
function M.accept() return inline.accept('all') end
function M.accept_word() return inline.accept('word') end
function M.accept_line() return inline.accept('line') end
function M.dismiss() inline.clear() end
function M.suggest() inline.trigger() end

function M.show_status()
  local client = server.client(0) or server.all()[1]
  if not client then
    vim.notify('qcoder: no server running. ' .. status.line(), vim.log.levels.INFO)
    return
  end
  client.request('workspace/executeCommand', { command = 'qcoder.status', arguments = {} }, function(err, result)
    if err then
      vim.notify('qcoder: ' .. tostring(err.message), vim.log.levels.ERROR)
      return
    end
    local lines = status.describe(result or {})
    local s = inline.stats
    table.insert(lines, string.format('  client: %d requests, %d replies, %d partials shown, %d accepted',
      s.requests, s.replies, s.partials_shown, s.accepted))
    vim.notify(table.concat(lines, '\n'), vim.log.levels.INFO)
  end)
end

function M.rewrite(line1, line2, instruction, done)
  if not opts then return vim.notify('qcoder: call require("qcoder").setup() first', vim.log.levels.ERROR) end
  require('qcoder.actions').rewrite(line1, line2, instruction, done)
end

function M.refactor(instruction, refactor_opts, done)
  if not opts then return vim.notify('qcoder: call require("qcoder").setup() first', vim.log.levels.ERROR) end
  require('qcoder.actions').refactor(instruction, refactor_opts, done)
end

-- Stops the servers and starts them again for the open buffers.
function M.restart()
  if not opts then return vim.notify('qcoder: call require("qcoder").setup() first', vim.log.levels.ERROR) end
  inline.clear()
  status.on_status({ state = 'stopped' })
  server.stop_all(function()
    for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(bufnr) then attach(bufnr) end
    end
  end)
end

return M
