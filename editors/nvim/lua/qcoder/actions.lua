-- :QcoderRewrite — rewrite whole lines following an instruction. The server computes the edit
-- (workspace/executeCommand qcoder.rewriteSelection) and applies it through workspace/applyEdit, which
-- Neovim's client handles; the other actions (complete, document, fix) come through vim.lsp.buf.code_action.
local position = require('qcoder.position')
local server = require('qcoder.server')

local M = {}

-- Rewrites lines line1..line2 (1-based, inclusive) of the current buffer. Without an instruction, asks.
-- `done(err, result)` (optional) runs when the server answered.
function M.rewrite(line1, line2, instruction, done)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = server.client(bufnr)
  if not client then
    vim.notify('qcoder: no server for this buffer', vim.log.levels.ERROR)
    return
  end
  if instruction == nil or instruction == '' then
    vim.ui.input({ prompt = 'qcoder rewrite: ' }, function(answer)
      if answer and answer ~= '' then M.rewrite(line1, line2, answer, done) end
    end)
    return
  end
  local encoding = client.offset_encoding or 'utf-16'
  local last = vim.api.nvim_buf_line_count(bufnr)
  local finish
  if line2 < last then
    finish = { line = line2, character = 0 }
  else
    local text = vim.api.nvim_buf_get_lines(bufnr, last - 1, last, false)[1] or ''
    finish = position.to_lsp(bufnr, last - 1, #text, encoding)
  end
  local args = {
    uri = vim.uri_from_bufnr(bufnr),
    range = { start = { line = line1 - 1, character = 0 }, ['end'] = finish },
    instruction = instruction,
  }
  vim.notify('qcoder: rewriting lines ' .. line1 .. '-' .. line2 .. '…', vim.log.levels.INFO)
  client.request('workspace/executeCommand', { command = 'qcoder.rewriteSelection', arguments = { args } },
    function(err, result)
      if err then
        vim.notify('qcoder: rewrite failed: ' .. tostring(err.message), vim.log.levels.ERROR)
      elseif result and result.applied == false then
        vim.notify('qcoder: the edit was not applied: ' .. tostring(result.failureReason), vim.log.levels.WARN)
      else
        vim.notify('qcoder: rewrite applied', vim.log.levels.INFO)
      end
      if done then done(err, result) end
    end, bufnr)
end

-- Refactors the whole workspace following `instruction` (qcoder.refactorWorkspace): the server sends one
-- workspace edit, which Neovim applies to the files (loading those not open); progress shows through
-- the server's work-done progress. `opts`: include / exclude (lists of globs), checkRelevance.
function M.refactor(instruction, opts, done)
  local client = server.client(0) or server.all()[1]
  if not client then
    vim.notify('qcoder: no server running', vim.log.levels.ERROR)
    return
  end
  if instruction == nil or instruction == '' then
    vim.ui.input({ prompt = 'qcoder refactor the workspace: ' }, function(answer)
      if answer and answer ~= '' then M.refactor(answer, opts, done) end
    end)
    return
  end
  local args = vim.tbl_extend('force', { instruction = instruction }, opts or {})
  vim.notify('qcoder: refactoring the workspace…', vim.log.levels.INFO)
  client.request('workspace/executeCommand', { command = 'qcoder.refactorWorkspace', arguments = { args } },
    function(err, result)
      if err then
        vim.notify('qcoder: refactor failed: ' .. tostring(err.message), vim.log.levels.ERROR)
      else
        local skipped = result.skipped and #result.skipped > 0 and (', skipped (edited meanwhile): ' .. table.concat(result.skipped, ', ')) or ''
        vim.notify(string.format('qcoder: refactor %s: %d files, %d units changed%s',
          result.applied and 'applied' or 'not applied', result.files or 0, result.unitsChanged or 0, skipped),
          vim.log.levels.INFO)
      end
      if done then done(err, result) end
    end)
end

return M
