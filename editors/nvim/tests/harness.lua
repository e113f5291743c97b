-- A tiny async test runner for headless Neovim: the test body runs in a coroutine, and `wait` hands control
-- back to the editor's main loop (typed keys, LSP messages, autocommands) until a condition holds.
local H = {}

local co = nil

function H.fail(message)
  io.stderr:write('FAIL: ' .. tostring(message) .. '\n')
  vim.cmd('cquit 1')
end

function H.check(condition, message)
  if not condition then H.fail(message) end
end

local function resume()
  local ok, err = coroutine.resume(co)
  if not ok then H.fail(debug.traceback(co, err)) end
end

-- Lets the main loop run until `condition()` holds (or fails the test after `timeout_ms`).
function H.wait(condition, what, timeout_ms)
  local deadline = vim.loop.now() + (timeout_ms or 60000)
  while not condition() do
    if vim.loop.now() > deadline then H.fail('timed out waiting for ' .. what) end
    vim.defer_fn(resume, 10)
    coroutine.yield()
  end
end

-- Lets the main loop run for `ms` milliseconds.
function H.sleep(ms)
  local deadline = vim.loop.now() + ms
  H.wait(function() return vim.loop.now() >= deadline end, 'a pause')
end

-- Types `keys` as a person would (mappings apply), then lets the editor process them.
function H.type(keys)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), 'mt', false)
  H.sleep(30)
end

-- Messages given to vim.notify, captured.
H.messages = {}
vim.notify = function(message) table.insert(H.messages, message) end

function H.seen(pattern)
  for _, m in ipairs(H.messages) do
    if m:find(pattern) then return true end
  end
  return false
end

function H.run(body)
  co = coroutine.create(function()
    body()
    vim.cmd('qall!')
  end)
  resume()
end

return H
