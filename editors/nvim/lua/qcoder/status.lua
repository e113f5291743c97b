-- The server's state for a statusline: `qcoder/status` notifications (loading, idle, busy, error, offline
-- (a remote backend that cannot be reached), with the
-- last request's figures) and the model load's work-done progress.
local M = {}

M.last = { state = 'stopped' }

function M.on_status(status)
  M.last = status
  vim.cmd('redrawstatus')
end

-- A short line for a statusline: "qcoder loading", "qcoder idle 21.4 tok/s, experts 93%", "qcoder busy".
function M.line()
  local s = M.last
  if s.state == 'error' then return 'qcoder error' end
  local parts = { 'qcoder ' .. (s.state or '?') }
  if s.tokensPerSecond then table.insert(parts, string.format('%.1f tok/s', s.tokensPerSecond)) end
  if s.expertHitRate then table.insert(parts, string.format('experts %d%%', math.floor(s.expertHitRate * 100 + 0.5))) end
  if s.prefixReuse then table.insert(parts, string.format('reuse %d%%', math.floor(s.prefixReuse * 100 + 0.5))) end
  return table.concat(parts, ' ')
end

-- The lines :QcoderStatus shows for a `qcoder.status` answer.
function M.describe(status)
  local lines = { 'qcoder: ' .. tostring(status.state) }
  local keys = vim.tbl_keys(status)
  table.sort(keys)
  for _, k in ipairs(keys) do
    if k ~= 'state' then
      local v = status[k]
      table.insert(lines, string.format('  %s: %s', k, type(v) == 'table' and vim.fn.json_encode(v) or tostring(v)))
    end
  end
  return lines
end

return M
