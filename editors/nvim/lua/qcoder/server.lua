-- Starting `qcoder lsp` and attaching buffers to it: one server per project root, shared by its buffers.
-- Uses vim.lsp.start where it exists (Neovim 0.8+), vim.lsp.start_client + buf_attach_client on 0.7.
local M = {}

local clients = {}  -- root -> client id (0.7 path)
local handlers = {} -- method -> function, installed on every client

function M.set_handlers(h) handlers = h end

local function root_for(bufnr, markers)
  local path = vim.api.nvim_buf_get_name(bufnr)
  local dir = vim.fn.fnamemodify(path, ':p:h')
  local found = vim.fs and vim.fs.find and vim.fs.find(markers, { path = dir, upward = true })[1]
  if not found and not vim.fs then
    for _, marker in ipairs(markers) do
      local hit = vim.fn.finddir(marker, dir .. ';')
      if hit == '' then hit = vim.fn.findfile(marker, dir .. ';') end
      if hit ~= '' then found = (vim.fn.fnamemodify(hit, ':p'):gsub('/$', '')) break end
    end
  end
  return found and vim.fn.fnamemodify(found, ':h') or dir
end

local function client_config(opts, root)
  local config = require('qcoder.config')
  return {
    name = 'qcoder',
    cmd = config.command(opts),
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    init_options = opts.settings,
    settings = { qcoder = opts.settings },
    handlers = handlers,
    flags = { debounce_text_changes = 0 },  -- every keystroke reaches the server before its request
  }
end

-- Whether a buffer is one qcoder serves: a file on disk (or to be), of a filetype the options allow.
function M.wanted(bufnr, opts)
  if vim.bo[bufnr].buftype ~= '' or vim.api.nvim_buf_get_name(bufnr) == '' then return false end
  local ft = vim.bo[bufnr].filetype
  if ft == '' then return false end
  return opts.filetypes == nil or vim.tbl_contains(opts.filetypes, ft)
end

-- Attaches `bufnr` to the server of its project, starting it when needed. Returns the client id or nil.
function M.attach(bufnr, opts)
  local root = root_for(bufnr, opts.root_markers)
  if vim.fn.executable(M.command_binary(opts)) ~= 1 then
    vim.notify_once('qcoder: cannot run ' .. M.command_binary(opts) .. ' (set cmd in setup, or put qcoder on PATH)',
      vim.log.levels.ERROR)
    return nil
  end
  if vim.lsp.start then
    return vim.lsp.start(client_config(opts, root), { bufnr = bufnr })
  end
  local id = clients[root]
  if not id or not vim.lsp.get_client_by_id(id) then
    id = vim.lsp.start_client(client_config(opts, root))
    if not id then return nil end
    clients[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
  return id
end

function M.command_binary(opts) return require('qcoder.config').command(opts)[1] end

-- The qcoder client serving `bufnr`, or nil.
function M.client(bufnr)
  for _, c in pairs(vim.lsp.buf_get_clients(bufnr or 0)) do
    if c.name == 'qcoder' then return c end
  end
  return nil
end

-- Every running qcoder client.
function M.all()
  local out = {}
  for _, c in pairs(vim.lsp.get_active_clients()) do
    if c.name == 'qcoder' then table.insert(out, c) end
  end
  return out
end

-- Stops every qcoder client; `done` runs once all have exited (or after 10 s).
function M.stop_all(done)
  local running = M.all()
  for _, c in ipairs(running) do c.stop() end
  clients = {}
  vim.wait(10000, function()
    for _, c in ipairs(running) do
      if not c.is_stopped() then return false end
    end
    return true
  end, 20)
  if done then done() end
end

return M
