-- The plugin's options: the defaults, and setup()'s table merged over them with its types checked.
local M = {}

M.defaults = {
  -- The server command. Default: `qcoder lsp` (qcoder found on PATH), with --model when `model` is set.
  cmd = nil,
  model = nil,          -- the model folder; nil: the server looks in the Hugging Face cache
  args = {},            -- more arguments for `qcoder lsp` (e.g. { '--expert-cache-ram', '8GiB' })
  filetypes = nil,      -- attach to these filetypes only; nil: every buffer backed by a file
  root_markers = { '.git', '.hg', 'pyproject.toml', 'package.json', 'Cargo.toml', 'go.mod' },
  -- Server settings (the same keys as VS Code's): sent at start and answered to workspace/configuration.
  -- e.g. { maxTokens = 128, contextTokens = 2048, debounceMs = 150, enable = { markdown = false } }
  settings = {},
  auto_trigger = true,  -- ask for a completion as you type (otherwise only with keymaps.trigger)
  keymaps = {
    accept = '<Tab>',           -- falls through to the key's own meaning when nothing is shown
    accept_word = '<M-Right>',
    accept_line = '<M-C-Right>',
    dismiss = '<C-]>',
    trigger = '<M-\\>',         -- ask now (up to three alternatives; <M-]> / <M-[> cycle them)
    next = '<M-]>',
    prev = '<M-[>',
  },
  ghost_hl = 'Comment',  -- highlight group of the ghost text
}

local function check(opts)
  vim.validate({
    cmd = { opts.cmd, 'table', true },
    model = { opts.model, 'string', true },
    args = { opts.args, 'table' },
    filetypes = { opts.filetypes, 'table', true },
    root_markers = { opts.root_markers, 'table' },
    settings = { opts.settings, 'table' },
    auto_trigger = { opts.auto_trigger, 'boolean' },
    keymaps = { opts.keymaps, 'table' },
    ghost_hl = { opts.ghost_hl, 'string' },
  })
  for name, key in pairs(opts.keymaps) do
    if M.defaults.keymaps[name] == nil then error('qcoder: unknown keymap "' .. name .. '"') end
    if key ~= false and type(key) ~= 'string' then error('qcoder: keymaps.' .. name .. ': a key or false') end
  end
end

-- The options in force: defaults, then `opts`. Raises a clear error on a wrong type.
function M.resolve(opts)
  local merged = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  check(merged)
  return merged
end

-- The command that starts the server.
function M.command(opts)
  if opts.cmd then return opts.cmd end
  local cmd = { 'qcoder', 'lsp' }
  if opts.model then vim.list_extend(cmd, { '--model', opts.model }) end
  return vim.list_extend(cmd, opts.args)
end

return M
